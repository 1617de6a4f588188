"""The read side: one metric over commits (series), a commit beside its baseline, the commits
listing and the index of series that have results."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from bench_server.analysis import repository as analysis_repo
from bench_server.catalog.repository import project_by_slug
from bench_server.history import repository as repo
from bench_server.history.repository import ValueSlice as ValueSlice  # for callers of series_values
from bench_server.kit.errors import InvalidInput, NotFound
from bench_server.kit.paging import Listing
from bench_server.models import Benchmark, Commit, HardwareClass, Metric, Project


@dataclass(frozen=True)
class SeriesKey:
    project: Project
    branch: str
    benchmark: Benchmark
    metric: Metric
    hardware_class: HardwareClass


def resolve_series_key(
    session: Session,
    *,
    project: str,
    metric: str,
    hardware_class: str,
    branch: str | None = None,
    benchmark_id: int | None = None,
    suite: str | None = None,
    benchmark: str | None = None,
    params_hash: str | None = None,
) -> SeriesKey:
    proj = project_by_slug(session, project)
    if benchmark_id is not None:
        bench = repo.benchmark_by_id(session, benchmark_id)
        if bench is None:
            raise InvalidInput("benchmark_id", f"no benchmark {benchmark_id}")
    else:
        if not benchmark:
            raise InvalidInput(
                "benchmark", "give benchmark_id, or benchmark (with suite and params_hash if needed)"
            )
        found = repo.benchmarks_named(session, benchmark, suite, params_hash, limit=20)
        if not found:
            raise InvalidInput("benchmark", f"no benchmark {benchmark!r}")
        if len(found) > 1:
            options = ", ".join(f"{b.suite}/{b.params_hash[:12]}" for b in found)
            raise InvalidInput(
                "params_hash", f"benchmark {benchmark!r} has several parameter sets: {options}"
            )
        bench = found[0]
    met = repo.metric_by_name(session, metric)
    if met is None:
        raise InvalidInput("metric", f"no metric {metric!r}")
    hw = repo.hardware_class_by_name(session, hardware_class)
    if hw is None:
        raise InvalidInput("hardware_class", f"no hardware class {hardware_class!r}")
    return SeriesKey(proj, branch or proj.default_branch, bench, met, hw)


def series(session: Session, key: SeriesKey, *, with_samples: bool = False) -> dict[str, Any]:
    """One point per commit in first-parent order: the mean over that commit's results.

    Columnar (parallel arrays), which is what plots want and what encodes fast: a 2,000-point
    series is one aggregate query and a handful of lists.
    """
    ids = (key.project.id, key.benchmark.id, key.metric.id, key.hardware_class.id, key.branch)
    rows = repo.series_points(session, *ids)
    commits, order, committed_at, values, counts = (
        (list(col) for col in zip(*rows, strict=True)) if rows else ([], [], [], [], [])
    )
    out: dict[str, Any] = {
        "project": key.project.slug,
        "branch": key.branch,
        "benchmark": {
            "id": key.benchmark.id,
            "suite": key.benchmark.suite,
            "name": key.benchmark.name,
            "params": key.benchmark.params,
            "params_hash": key.benchmark.params_hash,
        },
        "metric": {"name": key.metric.name, "unit": key.metric.unit, "direction": key.metric.direction},
        "hardware_class": key.hardware_class.name,
        "length": len(commits),
        "commits": commits,
        "order": order,
        "committed_at": committed_at,
        "values": [float(v) for v in values],
        "n": counts,
    }
    if with_samples:
        by_sha: dict[str, list[float]] = {sha: [] for sha in commits}
        sample_rows = repo.series_samples(session, *ids)
        for sha, samples, value in sample_rows:
            by_sha[sha].extend(samples if samples else [value])
        out["samples"] = [by_sha[sha] for sha in commits]
    return out


def series_values(
    session: Session,
    project_id: int,
    benchmark_id: int,
    hardware_class_id: int,
    branch: str,
    only: ValueSlice = ValueSlice(),
) -> list[tuple[tuple[int, int], int, int, float]]:
    """Every result of one benchmark on one hardware class and branch, in first-parent order:
    ((metric id, machine id), commit id, order key, value), one row per result, so a commit
    with several results has several samples."""
    rows = repo.series_values(session, project_id, benchmark_id, hardware_class_id, branch, only)
    return [((m, machine), c, int(order), float(v)) for m, machine, c, order, v in rows]


def benchmark_outcomes(
    session: Session,
    project_id: int,
    hardware_class_id: int,
    branch: str,
    suite: str,
    benchmark_id: int | None,
) -> list[tuple[int, int, bool]]:
    """(commit id, order key, failed) per commit where the benchmark (or, with none, the suite)
    ran on this hardware class and branch, in first-parent order."""
    rows = repo.benchmark_outcomes(session, project_id, hardware_class_id, branch, suite, benchmark_id)
    return [(c, int(order), bool(failed)) for c, order, failed in rows]


def find_commit(session: Session, project: Project, sha: str) -> Commit:
    matches = repo.commits_by_prefix(session, project.id, sha, limit=2)
    if not matches:
        raise NotFound(f"no commit {sha!r} in project {project.slug!r}")
    if len(matches) > 1:
        raise InvalidInput("sha", f"{sha!r} names more than one commit; give more digits")
    return matches[0]


def baseline_for(session: Session, project: Project, commit: Commit) -> Commit | None:
    """The first parent when we have results for it, else the newest earlier commit on the
    default branch that has results."""
    if commit.parents:
        parent = repo.commit_with_results(session, project.id, commit.parents[0])
        if parent is not None:
            return parent
    return repo.previous_with_results(session, project, commit)


def compare_commit(
    session: Session, project_slug: str, sha: str, baseline_sha: str | None = None
) -> dict[str, Any]:
    project = project_by_slug(session, project_slug)
    commit = find_commit(session, project, sha)
    baseline = (
        find_commit(session, project, baseline_sha)
        if baseline_sha
        else baseline_for(session, project, commit)
    )
    current = repo.means(session, commit.id)
    base = repo.means(session, baseline.id) if baseline else {}

    bench_ids = {k[0] for k in current} | {k[0] for k in base}
    metric_ids = {k[1] for k in current} | {k[1] for k in base}
    hw_ids = {k[2] for k in current} | {k[2] for k in base}
    benches = repo.benchmarks_by_id(session, bench_ids)
    metrics = repo.metrics_by_id(session, metric_ids)
    hws = repo.hardware_names_by_id(session, hw_ids)

    items = []
    for key in sorted(
        current, key=lambda k: (benches[k[0]].suite, benches[k[0]].name, metrics[k[1]].name, k[2])
    ):
        value, n = current[key]
        b, m = benches[key[0]], metrics[key[1]]
        base_value = base.get(key, (None, 0))[0]
        change = None
        if base_value is not None and base_value != 0:
            change = (value - base_value) / abs(base_value)
        improved = None
        if change is not None and change != 0:
            improved = (change > 0) == (m.direction == "higher")
        items.append(
            {
                "suite": b.suite,
                "benchmark": b.name,
                "benchmark_id": b.id,
                "params": b.params,
                "metric": m.name,
                "unit": m.unit,
                "direction": m.direction,
                "hardware_class": hws[key[2]],
                "value": value,
                "n": n,
                "baseline_value": base_value,
                "change": change,
                "improved": improved,
            }
        )

    failures = [
        {
            "id": f.id,
            "suite": f.suite,
            "benchmark_id": f.benchmark_id,
            "failure_class": f.failure_class,
            "message": f.message,
            "hardware_class_id": f.hardware_class_id,
        }
        for f in repo.failures_of(session, commit.id)
    ]
    jobs = [
        {
            "id": j.id,
            "suite": j.suite,
            "state": j.state,
            "attempt": j.attempt,
            "failure_class": j.failure_class,
            "hardware_class_id": j.hardware_class_id,
        }
        for j in repo.jobs_of(session, commit.id)
    ]
    # The alerts whose suspect is this commit (the analysis domain's rows, as /alerts lists them).
    alerts = analysis_repo.alert_rows(session, commit_id=commit.id)
    return {
        "project": project.slug,
        "commit": _commit_json(commit),
        "baseline": _commit_json(baseline) if baseline else None,
        "results": items,
        "failures": failures,
        "jobs": jobs,
        "alerts": alerts,
    }


def _commit_json(c: Commit) -> dict[str, Any]:
    return {
        "sha": c.sha,
        "branch": c.branch,
        "parents": c.parents,
        "author": c.author,
        "message": c.message,
        "committed_at": c.committed_at.isoformat() if c.committed_at else None,
        "order": c.order_key,
    }


def commits_listing(session: Session, project_slug: str, branch: str | None) -> Listing:
    """Commits of a project, newest first."""
    project = project_by_slug(session, project_slug)
    return repo.commits_listing(project.id, branch)


@dataclass(frozen=True)
class SeriesEntry:
    project: str
    benchmark_id: int
    suite: str
    benchmark: str
    metric: str
    hardware_class: str


def series_index(session: Session, limit: int = 500) -> list[SeriesEntry]:
    """The series that have results, by project, suite, benchmark and metric."""
    return [SeriesEntry(*row) for row in repo.series_keys(session, limit)]
