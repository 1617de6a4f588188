"""The read side: one metric over commits (series), a commit beside its baseline, the commits
listing and the index of series that have results."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from bench_server.analysis import repository as analysis_repo
from bench_server.catalog.repository import all_projects, project_by_slug
from bench_server.history import repository as repo
from bench_server.history.repository import ValueSlice as ValueSlice  # for callers of series_values
from bench_server.kit.errors import InvalidInput, NotFound
from bench_server.kit.paging import Listing
from bench_server.models import ALERT_STATES, Benchmark, Commit, HardwareClass, Metric, Project
from bench_server.models.base import utcnow

# Alert kinds that mean a benchmark is failing now (`recovered` is good news).
FAILING_KINDS = frozenset({"starts_failing", "flaky"})


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
    """The series that have results, by project, suite, benchmark and metric (from the series
    catalog: no scan of results)."""
    return [SeriesEntry(*row) for row in repo.series_keys(session, limit)]


# --------------------------------------------------------------------------------------
# The series catalog: kept by ingest, read by the index, the overview and the series page.


def record_results(
    session: Session,
    *,
    project_id: int,
    branch: str,
    hardware_class_id: int,
    commit: Commit,
    values: Sequence[tuple[int, int, float]],
) -> None:
    """Fold a batch's (benchmark id, metric id, value) into the series catalog, in the ingest's
    transaction. Call it before the batch's results are written: a series that has no result
    at this commit yet gains a point.

    Two batches for one new commit of one series ingested at the same instant may both count
    that point (neither sees the other's results); the counts are display figures, the series
    itself is always read from results."""
    if not values:
        return
    sums: dict[tuple[int, int], list[float]] = {}
    for benchmark_id, metric_id, value in values:
        acc = sums.setdefault((benchmark_id, metric_id), [0.0, 0])
        acc[0] += value
        acc[1] += 1
    present = repo.series_present_at(session, project_id, commit.id, hardware_class_id, branch)
    now = utcnow()
    batch = {
        "project_id": project_id,
        "hardware_class_id": hardware_class_id,
        "branch": branch,
        "first_commit_id": commit.id,
        "first_order_key": commit.order_key,
        "last_commit_id": commit.id,
        "last_order_key": commit.order_key,
        "updated_at": now,
        "created_at": now,
    }
    repo.upsert_series(
        session,
        batch,
        [
            {
                "benchmark_id": benchmark_id,
                "metric_id": metric_id,
                "last_value": total / n,
                "last_n": int(n),
                "point_count": 0 if (benchmark_id, metric_id) in present else 1,
                "result_count": int(n),
            }
            for (benchmark_id, metric_id), (total, n) in sorted(sums.items())
        ],
    )


def find_project(session: Session, slug: str) -> Project:
    """The project, or NotFound (a page for an unknown project is a 404)."""
    try:
        return project_by_slug(session, slug)
    except InvalidInput as exc:
        raise NotFound(f"no project {slug!r}") from exc


def default_project(session: Session, slug: str | None) -> Project | None:
    """The named project, or the first by slug when none is named (None: there are none)."""
    if slug:
        return find_project(session, slug)
    found = all_projects(session)
    return found[0] if found else None


def series_catalog_listing(
    session: Session,
    project: str | None,
    branch: str | None,
    suite: str | None,
    metric: str | None,
    hardware_class: str | None,
) -> Listing:
    project_id = find_project(session, project).id if project else None
    return repo.series_catalog_listing(project_id, branch, suite, metric, hardware_class)


def catalog(
    session: Session,
    project: Project,
    branch: str | None = None,
    *,
    suite: str | None = None,
    metric: str | None = None,
    hardware_class: str | None = None,
    limit: int = 2000,
) -> list[dict[str, Any]]:
    """Catalog entries of a project's branch (the default branch unless named)."""
    hw_ids = None
    if hardware_class:
        hw = repo.hardware_class_by_name(session, hardware_class)
        if hw is None:
            raise NotFound(f"no hardware class {hardware_class!r}")
        hw_ids = [hw.id]
    where = repo.CatalogFilter(
        project.id,
        branch or project.default_branch,
        hardware_class_ids=hw_ids,
        metric_names=[metric] if metric else None,
        suite=suite,
    )
    return repo.catalog_rows(session, where, limit=limit)


def params_label(params: dict[str, Any], skip: Sequence[str] = ()) -> str:
    """`concurrency=8, isl=128` (sorted keys): how a page names a parameter set."""
    return ", ".join(f"{k}={params[k]}" for k in sorted(params) if k not in skip)


# --------------------------------------------------------------------------------------
# One metric over commits, one trace per hardware class or per parameter value.

SAMPLE_WINDOW = 200  # the newest points whose error bars include the raw samples
# Metrics whose samples are not repeated measurements of the value (avg_busbw's are the busbw of
# each message size): their spread is that of repeated results only.
SAMPLES_ARE_NOT_REPEATS = frozenset({"avg_busbw"})


@dataclass(frozen=True)
class TraceKey:
    label: str
    benchmark: Benchmark
    hardware_class: HardwareClass
    param_value: Any = None


# commit id -> (sha, order key, committed_at as ISO text, author, message's first line), shared
# by the traces of a page.
CommitCache = dict[int, tuple[str, int, str | None, str | None, str]]


def _summaries(session: Session, project_id: int, first: int, last: int) -> CommitCache:
    return {
        i: (sha, int(order), when.isoformat() if when else None, author, (message or "").split("\n", 1)[0])
        for i, (sha, order, when, author, message) in repo.commit_summaries(
            session, project_id, first, last
        ).items()
    }


def _points(
    session: Session,
    project: Project,
    branch: str,
    metric: Metric,
    t: TraceKey,
    commits: CommitCache | None = None,
    around: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The series' points, or with `around` only those at commits in that first-parent range."""
    ids = (project.id, t.benchmark.id, metric.id, t.hardware_class.id, branch)
    commits = {} if commits is None else commits
    if around is not None:
        near = _summaries(session, project.id, *around)
        commits.update(near)
        aggregates = repo.series_aggregates(session, *ids, commit_ids=list(near))
    else:
        aggregates = repo.series_aggregates(session, *ids)
    missing = [row[0] for row in aggregates if row[0] not in commits]
    if missing:
        entry = repo.catalog_entry(session, *ids[:1], branch, *ids[1:4])
        first, last = (entry.first_order_key, entry.last_order_key) if entry else (0, 2**62)
        commits.update(_summaries(session, project.id, first, last))
        # Commits outside the catalog's range (written by a concurrent ingest): one more look.
        if any(c not in commits for c in missing):
            commits.update(_summaries(session, project.id, 0, 2**62))
    # First-parent order (then id), as GET /api/v1/series.
    rows = sorted(aggregates, key=lambda row: (commits[row[0]][1], row[0]))
    lo = [float(r[3]) for r in rows]
    hi = [float(r[4]) for r in rows]
    # The spread of the newest points includes their raw samples (older ones: their results').
    newest = [] if metric.name in SAMPLES_ARE_NOT_REPEATS else rows[-SAMPLE_WINDOW:]
    window = {r[0]: i for i, r in enumerate(newest, len(rows) - len(newest))}
    for commit_id, samples, value in repo.samples_at(session, *ids, list(window)):
        i = window[commit_id]
        for x in [float(s) for s in samples if isinstance(s, int | float)] if samples else [value]:
            lo[i], hi[i] = min(lo[i], x), max(hi[i], x)
    info = [commits[r[0]] for r in rows]
    return {
        "label": t.label,
        "hardware_class": t.hardware_class.name,
        "benchmark_id": t.benchmark.id,
        "params": t.benchmark.params,
        "param_value": t.param_value,
        "sha": [c[0] for c in info],
        "order": [int(c[1]) for c in info],
        "committed_at": [c[2] for c in info],
        "author": [c[3] for c in info],
        "message": [c[4] for c in info],
        "value": [float(r[1]) for r in rows],
        "n": [int(r[2]) for r in rows],
        "lo": lo,
        "hi": hi,
    }


def varying_params(session: Session, benchmark: Benchmark) -> dict[str, list[Any]]:
    """Parameters in which benchmarks of the same suite and name differ, with their values."""
    values: dict[str, set[str]] = {}
    raw: dict[str, dict[str, Any]] = {}
    siblings = repo.benchmarks_of(session, benchmark.suite, benchmark.name)
    for b in siblings:
        for k, v in b.params.items():
            values.setdefault(k, set()).add(repr(v))
            raw.setdefault(k, {})[repr(v)] = v
    return {
        k: sorted(raw[k].values(), key=_sort_key)
        for k, seen in values.items()
        if len(seen) > 1 or any(k not in b.params for b in siblings)
    }


def _sort_key(v: Any) -> tuple[int, Any]:
    return (0, float(v)) if isinstance(v, int | float) else (1, str(v))


def series_view(
    session: Session,
    *,
    project: str,
    benchmark_id: int,
    metric: str,
    hardware_classes: Sequence[str] = (),
    branch: str | None = None,
    vary: str | None = None,
) -> dict[str, Any]:
    """One metric of one benchmark over commits: a trace per hardware class (those named, or
    every class with this series), or with `vary`, a trace per value of that parameter among
    the benchmarks of the same suite and name (on one hardware class). NotFound when the
    catalog has no such series."""
    proj = find_project(session, project)
    branch = branch or proj.default_branch
    bench = repo.benchmark_by_id(session, benchmark_id)
    met = repo.metric_by_name(session, metric)
    if bench is None or met is None:
        raise NotFound(f"no series of benchmark {benchmark_id} and metric {metric!r}")
    named = list(dict.fromkeys(hardware_classes))
    hws = {h.name: h for h in repo.hardware_classes_named(session, named)} if named else {}
    unknown = [n for n in named if n not in hws]
    if unknown:
        raise NotFound(f"no hardware class {unknown[0]!r}")
    if vary:
        siblings = [
            b
            for b in repo.benchmarks_of(session, bench.suite, bench.name)
            if {k: v for k, v in b.params.items() if k != vary}
            == {k: v for k, v in bench.params.items() if k != vary}
        ]
        bench_ids = [b.id for b in siblings]
    else:
        siblings, bench_ids = [bench], [bench.id]
    every_class = repo.catalog_rows(
        session, repo.CatalogFilter(proj.id, branch, metric_names=[met.name], benchmark_ids=bench_ids)
    )
    wanted_ids = {h.id for h in hws.values()}
    entries = [e for e in every_class if not wanted_ids or e["hardware_class_id"] in wanted_ids]
    if not any(e["benchmark_id"] == bench.id for e in entries):
        where = f" on {', '.join(named)}" if named else ""
        raise NotFound(f"no results of {bench.suite}/{bench.name} {met.name}{where} on branch {branch!r}")
    hw_by_id = {
        h.id: h
        for h in repo.hardware_classes_by_id(session, sorted({e["hardware_class_id"] for e in entries}))
    }
    by_bench = {b.id: b for b in siblings}
    keys: list[TraceKey] = []
    if vary:
        hw_id = (
            hws[named[0]].id
            if named
            else next(e["hardware_class_id"] for e in entries if e["benchmark_id"] == bench.id)
        )
        found = sorted(
            (e for e in entries if e["hardware_class_id"] == hw_id),
            key=lambda e: _sort_key(by_bench[e["benchmark_id"]].params.get(vary)),
        )
        for e in found:
            value = by_bench[e["benchmark_id"]].params.get(vary)
            keys.append(TraceKey(f"{vary}={value}", by_bench[e["benchmark_id"]], hw_by_id[hw_id], value))
    else:
        missing = [n for n in named if not any(e["hardware_class_id"] == hws[n].id for e in entries)]
        if missing:
            raise NotFound(f"no results of {bench.suite}/{bench.name} {met.name} on {missing[0]!r}")
        for e in entries:
            keys.append(TraceKey(e["hardware_class"], bench, hw_by_id[e["hardware_class_id"]]))
    commits: CommitCache = {}
    traces = [_points(session, proj, branch, met, k, commits) for k in keys]
    trace_hw_ids = sorted({k.hardware_class.id for k in keys})
    trace_bench_ids = sorted({k.benchmark.id for k in keys})
    label_of = {(k.benchmark.id, k.hardware_class.id): k.label for k in keys}
    alerts = [
        {
            "id": a["id"],
            "kind": a["kind"],
            "state": a["state"],
            "magnitude": a["magnitude"],
            "significance": a["significance"],
            "sha": a["first_bad_sha"],
            "order": a["first_bad_order"],
            "hardware_class": a["hardware_class"],
            "trace": label_of.get((a["benchmark_id"], a["hardware_class_id"])),
        }
        for a in repo.alerts_in_series(session, proj.id, trace_bench_ids, met.id, trace_hw_ids, branch)
        if a["first_bad_sha"] is not None
    ]
    failures = [
        {
            "sha": f["sha"],
            "order": int(f["order_key"]),
            "failure_class": f["failure_class"],
            "message": f["message"],
            "hardware_class": hw_by_id[f["hardware_class_id"]].name,
            "trace": label_of.get((f["benchmark_id"], f["hardware_class_id"])),
        }
        for f in repo.failures_in_series(session, proj.id, trace_bench_ids, trace_hw_ids, branch, bench.suite)
    ]
    annotations = [
        {
            "sha": n["sha"],
            "order": int(n["order_key"]),
            "kind": n["kind"],
            "text": n["text"],
            "hardware_class": hw_by_id[n["hardware_class_id"]].name
            if n["hardware_class_id"] in hw_by_id
            else None,
        }
        for n in repo.annotations_for(session, proj.id, trace_hw_ids)
    ]
    return {
        "project": proj.slug,
        "branch": branch,
        "benchmark": {
            "id": bench.id,
            "suite": bench.suite,
            "name": bench.name,
            "params": bench.params,
            "params_hash": bench.params_hash,
        },
        "metric": {"name": met.name, "unit": met.unit, "direction": met.direction},
        "vary": vary,
        "traces": traces,
        "alerts": alerts,
        "failures": failures,
        "annotations": annotations,
        "hardware_available": sorted(
            {e["hardware_class"] for e in every_class if e["benchmark_id"] == bench.id}
        ),
        "varying_params": {k: v for k, v in varying_params(session, bench).items()},
    }


# --------------------------------------------------------------------------------------
# The overview: every hardware class at a glance.


@dataclass(frozen=True)
class Headline:
    label: str
    suite: str
    metrics: tuple[str, ...]  # the first one a hardware class reports is shown
    # "peak": the largest value over the benchmarks that match (e.g. over message sizes).
    peak: bool = False
    collective: str | None = None


HEADLINES = (
    Headline("Output tokens/s", "serving", ("output_throughput",)),
    Headline("TTFT p50", "serving", ("median_ttft_ms", "p50_ttft_ms")),
    Headline("TTFT p99", "serving", ("p99_ttft_ms",)),
    Headline("TPOT p50", "serving", ("median_tpot_ms", "p50_tpot_ms")),
    Headline("Goodput", "serving", ("request_goodput",)),
    Headline("All-reduce peak busbw", "collectives", ("busbw",), peak=True, collective="all_reduce"),
)
HEADLINE_METRICS = [m for h in HEADLINES for m in h.metrics]
SPARK_COMMITS = 30  # commits a sparkline covers (the newest of the branch)
STRIP_COMMITS = 15  # commits in the overview's status strip
STALE_AFTER = 10  # a hardware class whose newest result is this many commits old is stale


def _collective_of(entry: dict[str, Any]) -> str:
    params = entry["params"] or {}
    return str(params.get("collective") or entry["benchmark"].split("-", 1)[0])


def _headline_entries(h: Headline, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The catalog entries one hardware class shows for a headline: the series with the most
    points for the first metric it reports, or for a peak every matching benchmark at the
    newest commit."""
    for metric in h.metrics:
        found = [e for e in entries if e["suite"] == h.suite and e["metric"] == metric]
        if h.collective:
            found = [e for e in found if _collective_of(e) == h.collective]
        if not found:
            continue
        if h.peak:
            newest = max(e["last_order_key"] for e in found)
            return [e for e in found if e["last_order_key"] == newest]
        return [max(found, key=lambda e: (e["point_count"], e["last_order_key"], -e["benchmark_id"]))]
    return []


def _change(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base == 0:
        return None
    return (value - base) / abs(base)


def _improved(change: float | None, direction: str) -> bool | None:
    if change is None or change == 0:
        return None
    return (change > 0) == (direction == "higher")


def overview(session: Session, project_slug: str | None, branch: str | None = None) -> dict[str, Any]:
    """Per hardware class the latest value of each headline metric, its change against the
    previous point, a sparkline of the newest commits and a status (regression, failure,
    healthy, stale); the open incidents; the newest commits with a status per hardware class."""
    proj = default_project(session, project_slug)
    if proj is None:
        return {"project": None, "projects": [], "hardware": [], "incidents": [], "commits": []}
    branch = branch or proj.default_branch
    entries = repo.catalog_rows(session, repo.CatalogFilter(proj.id, branch))
    recent = repo.recent_commits(session, proj.id, branch, max(SPARK_COMMITS, STRIP_COMMITS))
    recent_ids = [c.id for c in recent]
    failures = repo.failure_counts_at(session, recent_ids)
    hw_ids = sorted({e["hardware_class_id"] for e in entries} | {h for _, h in failures})
    hardware = sorted(
        repo.hardware_classes_by_id(session, hw_ids), key=lambda h: (h.kind != "machine", h.name)
    )

    chosen: dict[tuple[int, int], list[dict[str, Any]]] = {}  # (hardware, headline index) -> entries
    for hw in hardware:
        mine = [e for e in entries if e["hardware_class_id"] == hw.id]
        for i, h in enumerate(HEADLINES):
            chosen[(hw.id, i)] = _headline_entries(h, mine)
    picked = [e for es in chosen.values() for e in es]
    spark_commits = recent[:SPARK_COMMITS]
    means = repo.means_at(
        session,
        proj.id,
        branch,
        [c.id for c in spark_commits],
        sorted({e["benchmark_id"] for e in picked}),
        sorted({e["metric_id"] for e in picked}),
    )
    at: dict[tuple[int, int, int, int], float] = {(c, b, m, h): v for c, b, m, h, v in means}
    order = list(reversed(spark_commits))  # oldest first
    open_regressions = repo.open_alert_hardware(session, proj.id, ["regression"])
    open_failure_alerts = repo.open_alert_hardware(session, proj.id, list(FAILING_KINDS))
    results = repo.result_counts_at(session, recent_ids)
    newest = recent[0].order_key if recent else None

    cards = []
    for hw in hardware:
        metrics: list[dict[str, Any]] = []
        for i, h in enumerate(HEADLINES):
            es = chosen[(hw.id, i)]
            if not es:
                metrics.append({"label": h.label, "metric": None})
                continue
            spark: list[float | None] = []
            shas: list[str] = []
            for c in order:
                vals = [
                    at[(c.id, e["benchmark_id"], e["metric_id"], hw.id)]
                    for e in es
                    if (c.id, e["benchmark_id"], e["metric_id"], hw.id) in at
                ]
                if vals:
                    spark.append(max(vals) if h.peak else vals[0])
                    shas.append(c.sha)
            lead = max(es, key=lambda e: e["last_value"]) if h.peak else es[0]
            value = float(lead["last_value"])
            previous = spark[-2] if len(spark) >= 2 else None
            change = _change(spark[-1], previous) if spark and shas[-1] == lead["last_sha"] else None
            metrics.append(
                {
                    "label": h.label,
                    "metric": lead["metric"],
                    "unit": lead["unit"],
                    "direction": lead["direction"],
                    "benchmark": lead["benchmark"],
                    "benchmark_id": lead["benchmark_id"],
                    "params": params_label(lead["params"] or {}),
                    "value": value,
                    "last_sha": lead["last_sha"],
                    "change": change,
                    "improved": _improved(change, lead["direction"]),
                    "spark": [v for v in spark if v is not None],
                    "peak_over": len(es) if h.peak else None,
                }
            )
        mine = [e for e in entries if e["hardware_class_id"] == hw.id]
        last_order = max((e["last_order_key"] for e in mine), default=None)
        active = [c for c in recent if (c.id, hw.id) in results or (c.id, hw.id) in failures]
        latest_failed = bool(active) and (active[0].id, hw.id) in failures
        if latest_failed or open_failure_alerts.get(hw.id):
            status = "failure"
        elif open_regressions.get(hw.id):
            status = "regression"
        elif newest is None or last_order is None or newest - last_order >= STALE_AFTER:
            status = "stale"
        else:
            status = "healthy"
        cards.append(
            {
                "hardware_class": hw.name,
                "kind": hw.kind,
                "accelerators": hw.accelerators,
                "status": status,
                "open_regressions": open_regressions.get(hw.id, 0),
                "latest_failed": latest_failed,
                "series": len(mine),
                "last_sha": next((e["last_sha"] for e in mine if e["last_order_key"] == last_order), None),
                "commits_behind": (newest - last_order)
                if newest is not None and last_order is not None
                else None,
                "metrics": metrics,
            }
        )

    kinds = repo.alert_kinds_at(session, recent_ids)
    strip = []
    for c in recent[:STRIP_COMMITS]:
        cells = []
        for hw in hardware:
            key = (c.id, hw.id)
            alert_kinds = kinds.get(key, set())
            if key in failures or not FAILING_KINDS.isdisjoint(alert_kinds):
                state = "failure"
            elif "regression" in alert_kinds:
                state = "regression"
            elif "improvement" in alert_kinds:
                state = "improvement"
            elif key in results:
                state = "healthy"
            else:
                state = "none"
            cells.append(
                {
                    "hardware_class": hw.name,
                    "state": state,
                    "results": results.get(key, 0),
                    "failures": failures.get(key, 0),
                }
            )
        strip.append({**_commit_json(c), "message": (c.message or "").split("\n", 1)[0], "cells": cells})
    return {
        "project": proj.slug,
        "projects": [p.slug for p in all_projects(session)],
        "branch": branch,
        "headlines": [h.label for h in HEADLINES],
        "hardware": cards,
        "incidents": incident_groups(session, proj, states=repo.OPEN_ALERT_STATES, limit=200)[:10],
        "commits": strip,
        "hardware_columns": [hw.name for hw in hardware],
    }


# --------------------------------------------------------------------------------------
# Alerts grouped by their suspect commit (the incidents), and their triage.


def incident_groups(
    session: Session,
    project: Project,
    *,
    states: Sequence[str] | None = None,
    hardware_class: str | None = None,
    suite: str | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Alerts grouped per first bad commit, newest first; each group names its incidents."""
    hw_id = None
    if hardware_class:
        hw = repo.hardware_class_by_name(session, hardware_class)
        if hw is None:
            raise NotFound(f"no hardware class {hardware_class!r}")
        hw_id = hw.id
    rows = repo.alerts_matching(
        session, project.id, states=states, hardware_class_id=hw_id, suite=suite, limit=limit
    )
    groups: dict[Any, dict[str, Any]] = {}
    for a in rows:
        key = a["first_bad_sha"]
        group = groups.setdefault(
            key,
            {
                "sha": a["first_bad_sha"],
                "order": a["first_bad_order"],
                "message": (a["first_bad_message"] or "").split("\n", 1)[0],
                "author": a["first_bad_author"],
                "last_good_sha": a["last_good_sha"],
                "incidents": [],
                "alerts": [],
                "kinds": [],
                "series": [],  # filled for the groups a page plots
            },
        )
        if a["incident_id"] is not None and a["incident_id"] not in [i["id"] for i in group["incidents"]]:
            group["incidents"].append({"id": a["incident_id"], "title": a["incident_title"]})
        if a["kind"] not in group["kinds"]:
            group["kinds"].append(a["kind"])
        group["alerts"].append(_alert_json(a))
    return list(groups.values())


def _alert_json(a: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": a["id"],
        "kind": a["kind"],
        "state": a["state"],
        "magnitude": a["magnitude"],
        "significance": a["significance"],
        "branch": a["branch"],
        "suite": a["suite"],
        "benchmark": a["benchmark"],
        "benchmark_id": a["benchmark_id"],
        "params": params_label(a["params"] or {}),
        "metric": a["metric"],
        "unit": a["unit"],
        "direction": a["direction"],
        "hardware_class": a["hardware_class"],
        "first_bad_sha": a["first_bad_sha"],
        "last_good_sha": a["last_good_sha"],
        "updated_at": a["updated_at"].isoformat() if a["updated_at"] else None,
    }


MEMBER_PLOTS_PER_GROUP = 4
MEMBER_WINDOW = 40  # commits either side of the suspect commit in a member series' plot


def alerts_view(
    session: Session,
    project_slug: str | None,
    *,
    state: str | None = None,
    hardware_class: str | None = None,
    suite: str | None = None,
    plotted_groups: int = 5,
) -> dict[str, Any]:
    """Incidents (alerts per suspect commit) with filters; the first groups carry the recent
    points of their member series, around the suspect commit."""
    proj = default_project(session, project_slug)
    if proj is None:
        return {"project": None, "groups": [], "states": list(ALERT_STATES)}
    if state and state not in (*ALERT_STATES, "open", "all"):
        raise InvalidInput("state", f"one of {', '.join(ALERT_STATES)}, open or all")
    states: Sequence[str] | None
    if state in (None, "", "open"):
        states = repo.OPEN_ALERT_STATES
    elif state == "all":
        states = None
    else:
        states = [state]
    groups = incident_groups(session, proj, states=states, hardware_class=hardware_class, suite=suite)
    commits: CommitCache = {}
    for group in groups[:plotted_groups]:
        group["series"] = _member_series(session, proj, group, commits)
    return {
        "project": proj.slug,
        "projects": [p.slug for p in all_projects(session)],
        "state": state or "open",
        "hardware_class": hardware_class,
        "suite": suite,
        "states": list(ALERT_STATES),
        "groups": groups,
    }


def _member_series(
    session: Session, project: Project, group: dict[str, Any], commits: CommitCache
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for a in group["alerts"]:
        key = (a["benchmark_id"], a["metric"], a["hardware_class"], a["branch"])
        if None in key[:3] or key in seen or len(out) >= MEMBER_PLOTS_PER_GROUP:
            continue
        seen.add(key)
        bench = repo.benchmark_by_id(session, a["benchmark_id"])
        met = repo.metric_by_name(session, a["metric"])
        hw = repo.hardware_class_by_name(session, a["hardware_class"])
        if bench is None or met is None or hw is None:
            continue
        branch = a["branch"] or project.default_branch
        # Only the commits around the suspect one (by first-parent position).
        order = group["order"] if group["order"] is not None else 0
        around = (order - MEMBER_WINDOW, order + MEMBER_WINDOW)
        window = _points(session, project, branch, met, TraceKey(hw.name, bench, hw), commits, around)
        out.append(
            {
                "alert_id": a["id"],
                "kind": a["kind"],
                "suite": bench.suite,
                "benchmark": bench.name,
                "benchmark_id": bench.id,
                "metric": {"name": met.name, "unit": met.unit, "direction": met.direction},
                "hardware_class": hw.name,
                "branch": branch,
                "trace": window,
            }
        )
    return out


# --------------------------------------------------------------------------------------
# The commit page.

LOG_TAIL_LINES = 40


def _tail(text: str | None, lines: int = LOG_TAIL_LINES) -> str | None:
    if not text:
        return None
    return "\n".join(text.rstrip("\n").split("\n")[-lines:])


def _seconds(start: Any, end: Any) -> float | None:
    if start is None or end is None:
        return None
    return float((end - start).total_seconds())


def commit_view(session: Session, project_slug: str, sha: str, baseline: str | None = None) -> dict[str, Any]:
    """`compare_commit` grouped by suite and hardware class, with the jobs (state, duration, the
    tail of the log), the failures (class and excerpt) and the alerts raised at the commit."""
    project = find_project(session, project_slug)
    data = compare_commit(session, project.slug, sha, baseline)
    commit = find_commit(session, project, data["commit"]["sha"])
    alerts = [_alert_json(a) for a in repo.alerts_for_commit(session, commit.id)]
    flagged = {(a["benchmark_id"], a["metric"], a["hardware_class"]): a for a in alerts}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in data["results"]:
        alert = flagged.get((r["benchmark_id"], r["metric"], r["hardware_class"]))
        groups.setdefault((r["suite"], r["hardware_class"]), []).append(
            {
                **r,
                "params_label": params_label(r["params"] or {}),
                "alert_kind": alert["kind"] if alert else None,
                "significance": alert["significance"] if alert else None,
            }
        )
    jobs = []
    now = utcnow()
    for j in repo.jobs_with_names(session, commit.id):
        end = j["finished_at"] or (now if j["state"] == "running" else None)
        started = j["started_at"]
        if started is not None and end is not None and started.tzinfo is None:
            end = end.replace(tzinfo=None)
        jobs.append(
            {
                "id": j["id"],
                "suite": j["suite"],
                "hardware_class": j["hardware_class"],
                "state": j["state"],
                "attempt": j["attempt"],
                "max_attempts": j["max_attempts"],
                "runner": j["runner"],
                "failure_class": j["failure_class"],
                "message": j["message"],
                "duration_s": _seconds(started, end),
                "log_tail": _tail(j["log"]),
            }
        )
    failures = [
        {**f, "params": params_label(f["params"] or {}), "log_excerpt": _tail(f["log_excerpt"])}
        for f in repo.failures_with_names(session, commit.id)
    ]
    return {
        "project": project.slug,
        "commit": data["commit"],
        "baseline": data["baseline"],
        "groups": [
            {"suite": suite, "hardware_class": hw, "results": rows}
            for (suite, hw), rows in sorted(groups.items())
        ],
        "results": len(data["results"]),
        "jobs": jobs,
        "failures": failures,
        "alerts": alerts,
    }


# --------------------------------------------------------------------------------------
# One benchmark across hardware classes.


def _pick_commit(
    session: Session, project: Project, sha: str | None, benchmark_ids: Sequence[int], branch: str
) -> Commit | None:
    if sha:
        return find_commit(session, project, sha)
    return repo.newest_commit_with(session, project.id, branch, benchmark_ids)


def _per(value: float | None, divisor: float | None, normalisable: bool) -> float | None:
    if value is None or not normalisable or not divisor:
        return None
    return value / divisor


def hardware_comparison(
    session: Session,
    project_slug: str | None,
    *,
    benchmark_id: int | None = None,
    metric: str | None = None,
    commit: str | None = None,
    branch: str | None = None,
) -> dict[str, Any]:
    """A benchmark's metric on every hardware class that ran it: absolute, per accelerator, per
    watt and per dollar-hour (the last three where the class's accelerators, power and price are
    configured). Latest values from the catalog, or the means at one commit."""
    proj = default_project(session, project_slug)
    if proj is None:
        return {"project": None, "choices": [], "rows": []}
    branch = branch or proj.default_branch
    entries = repo.catalog_rows(session, repo.CatalogFilter(proj.id, branch))
    pairs: dict[tuple[int, str], dict[str, Any]] = {}
    for e in entries:
        choice = pairs.setdefault(
            (e["benchmark_id"], e["metric"]),
            {
                "benchmark_id": e["benchmark_id"],
                "suite": e["suite"],
                "benchmark": e["benchmark"],
                "params": params_label(e["params"] or {}),
                "metric": e["metric"],
                "unit": e["unit"],
                "hardware_classes": 0,
            },
        )
        choice["hardware_classes"] += 1
    out: dict[str, Any] = {
        "project": proj.slug,
        "projects": [p.slug for p in all_projects(session)],
        "branch": branch,
        # Headline metrics first (throughput before the rest), then those run on most classes.
        "choices": sorted(
            pairs.values(),
            key=lambda c: (
                c["metric"] not in HEADLINE_METRICS,
                -c["hardware_classes"],
                c["suite"],
                c["benchmark"],
                c["metric"],
            ),
        ),
        "rows": [],
        "selected": None,
    }
    if benchmark_id is None or metric is None:
        return out
    mine = [e for e in entries if e["benchmark_id"] == benchmark_id and e["metric"] == metric]
    if not mine:
        raise NotFound(f"no results of benchmark {benchmark_id} metric {metric!r} on branch {branch!r}")
    first = mine[0]
    classes = {c.id: c for c in repo.hardware_classes_by_id(session, [e["hardware_class_id"] for e in mine])}
    at: Commit | None = None
    values: dict[int, tuple[float | None, str | None]] = {}
    if commit:
        at = find_commit(session, proj, commit)
        for _, _, _, hw_id, mean in repo.means_at(
            session, proj.id, branch, [at.id], [benchmark_id], [first["metric_id"]]
        ):
            values[hw_id] = (mean, at.sha)
    else:
        values = {e["hardware_class_id"]: (float(e["last_value"]), e["last_sha"]) for e in mine}
    normalisable = first["direction"] == "higher"  # throughputs and bandwidths, not latencies
    rows = []
    for e in sorted(mine, key=lambda e: e["hardware_class"]):
        hwc = classes[e["hardware_class_id"]]
        value, sha = values.get(hwc.id, (None, None))
        missing = []
        if not hwc.accelerators:
            missing.append("accelerators")
        if hwc.power_w is None:
            missing.append("power")
        if hwc.price_per_hour is None:
            missing.append("price")
        rows.append(
            {
                "hardware_class": hwc.name,
                "kind": hwc.kind,
                "accelerators": hwc.accelerators,
                "power_w": hwc.power_w,
                "price_per_hour": hwc.price_per_hour,
                "value": value,
                "sha": sha,
                "per_accelerator": _per(value, hwc.accelerators, normalisable),
                "per_watt": _per(value, hwc.power_w, normalisable),
                "per_dollar_hour": _per(value, hwc.price_per_hour, normalisable),
                "missing": missing,
            }
        )
    out["rows"] = rows
    out["selected"] = {
        "benchmark_id": benchmark_id,
        "suite": first["suite"],
        "benchmark": first["benchmark"],
        "params": params_label(first["params"] or {}),
        "metric": metric,
        "unit": first["unit"],
        "direction": first["direction"],
        "normalisable": normalisable,
        "commit": at.sha if at else None,
    }
    return out


# --------------------------------------------------------------------------------------
# Serving curves: a concurrency sweep at a commit beside its baseline.

LOAD_PARAMS = ("concurrency", "request_rate", "max_concurrency")
THROUGHPUT_PER_ACCELERATOR = "output_throughput_per_accelerator"
INTERACTIVITY = ("median_interactivity", "interactivity")
TPOT_FOR_INTERACTIVITY = ("median_tpot_ms", "mean_tpot_ms")
TTFT_PERCENTILE = re.compile(r"^(median|p\d+(?:\.\d+)?)_ttft_ms$")


def _load_key(benches: Sequence[Benchmark]) -> str | None:
    for key in LOAD_PARAMS:
        if len({repr(b.params.get(key)) for b in benches if key in b.params}) > 1:
            return key
    return None


def serving_curves(
    session: Session,
    project_slug: str | None,
    *,
    benchmark: str | None = None,
    commit: str | None = None,
    hardware_class: str | None = None,
    branch: str | None = None,
) -> dict[str, Any]:
    """Throughput per accelerator against tokens/s per user, and TTFT percentiles against load,
    over the load sweep of one serving benchmark (its parameter sets that differ in
    concurrency or request rate), at a commit and at its baseline, per hardware class."""
    proj = default_project(session, project_slug)
    if proj is None:
        return {"project": None, "choices": [], "curves": []}
    branch = branch or proj.default_branch
    serving = repo.benchmarks_of(session, "serving")
    by_name: dict[str, list[Benchmark]] = {}
    for b in serving:
        by_name.setdefault(b.name, []).append(b)
    choices = sorted(name for name, bs in by_name.items() if _load_key(bs))
    out: dict[str, Any] = {
        "project": proj.slug,
        "projects": [p.slug for p in all_projects(session)],
        "branch": branch,
        "choices": choices,
        "benchmark": benchmark,
        "curves": [],
        "commit": None,
        "baseline": None,
    }
    if benchmark is None:
        if not choices:
            return out
        benchmark = choices[0]
        out["benchmark"] = benchmark
    benches = by_name.get(benchmark)
    if not benches:
        raise NotFound(f"no serving benchmark {benchmark!r}")
    load = _load_key(benches)
    if load is None:
        raise NotFound(f"serving benchmark {benchmark!r} has no concurrency or request-rate sweep")
    out["load"] = load
    at = _pick_commit(session, proj, commit, [b.id for b in benches], branch)
    if at is None:
        return out
    base = baseline_for(session, proj, at)
    out["commit"] = _commit_json(at) | {"message": at.message}
    out["baseline"] = _commit_json(base) if base else None
    hw_filter = None
    if hardware_class:
        hw = repo.hardware_class_by_name(session, hardware_class)
        if hw is None:
            raise NotFound(f"no hardware class {hardware_class!r}")
        hw_filter = hw.id
    wanted = (THROUGHPUT_PER_ACCELERATOR, "output_throughput", *INTERACTIVITY, *TPOT_FOR_INTERACTIVITY)
    metrics = {m.id: m.name for m in repo.metrics_named(session, wanted)}
    # TTFT percentiles: whatever the sweep reports (median, p90, p99 ...).
    for m in repo.metrics_named(
        session, ["median_ttft_ms", *(f"p{p}_ttft_ms" for p in ("50", "90", "95", "99", "99.9"))]
    ):
        metrics[m.id] = m.name
    commit_ids = [at.id] + ([base.id] if base else [])
    rows = repo.means_at(session, proj.id, branch, commit_ids, [b.id for b in benches], list(metrics))
    hws = {h.id: h for h in repo.hardware_classes_by_id(session, sorted({r[3] for r in rows}))}
    bench_by_id = {b.id: b for b in benches}
    # (commit, hardware, group) -> load value -> metric -> value
    table: dict[tuple[int, int, str], dict[Any, dict[str, float]]] = {}
    for commit_id, bench_id, metric_id, hw_id, mean in rows:
        if hw_filter is not None and hw_id != hw_filter:
            continue
        params = bench_by_id[bench_id].params
        if load not in params:
            continue
        group = params_label(params, skip=(load,))
        table.setdefault((commit_id, hw_id, group), {}).setdefault(params[load], {})[metrics[metric_id]] = (
            mean
        )
    curves = []
    for (c, h, group), by_load in sorted(
        table.items(), key=lambda kv: (hws[kv[0][1]].name, kv[0][2], kv[0][0] != at.id)
    ):
        hwc = hws[h]
        points = []
        for load_value in sorted(by_load, key=_sort_key):
            got = by_load[load_value]
            per_acc = got.get(THROUGHPUT_PER_ACCELERATOR)
            if per_acc is None and "output_throughput" in got:
                # A class without accelerators (a CPU machine) counts as one.
                per_acc = got["output_throughput"] / max(1, hwc.accelerators)
            interactivity = next((got[k] for k in INTERACTIVITY if k in got), None)
            if interactivity is None:
                tpot = next((got[k] for k in TPOT_FOR_INTERACTIVITY if k in got and got[k] > 0), None)
                interactivity = 1000.0 / tpot if tpot else None
            ttft = {
                ("p50" if k.startswith("median") else k.split("_", 1)[0]): got[k]
                for k in sorted(got)
                if TTFT_PERCENTILE.match(k)
            }
            points.append(
                {
                    "load": load_value,
                    "throughput_per_accelerator": per_acc,
                    "output_throughput": got.get("output_throughput"),
                    "interactivity": interactivity,
                    "ttft_ms": ttft,
                }
            )
        curves.append(
            {
                "hardware_class": hwc.name,
                "accelerators": hwc.accelerators,
                "group": group,
                "run": "commit" if c == at.id else "baseline",
                "points": points,
            }
        )
    out["curves"] = curves
    return out


# --------------------------------------------------------------------------------------
# Collectives: bandwidth against message size at a commit beside its baseline.

SIZE_METRICS = ("busbw", "algbw", "busbw_inplace", "algbw_inplace")


def collectives_view(
    session: Session,
    project_slug: str | None,
    *,
    collective: str | None = None,
    nranks: int | None = None,
    backend: str | None = None,
    commit: str | None = None,
    branch: str | None = None,
) -> dict[str, Any]:
    """busbw and algbw against message size for one collective, world size and backend, at a
    commit and at its baseline, per hardware class; and the average-busbw series over commits."""
    proj = default_project(session, project_slug)
    if proj is None:
        return {"project": None, "choices": [], "sweeps": [], "avg_busbw": []}
    branch = branch or proj.default_branch
    benches = repo.benchmarks_of(session, "collectives")
    combos: dict[tuple[str, Any, Any], list[Benchmark]] = {}
    for b in benches:
        key = (b.name, b.params.get("nranks"), b.params.get("backend"))
        combos.setdefault(key, []).append(b)
    choices = [
        {"collective": n, "nranks": r, "backend": be}
        for n, r, be in sorted(combos, key=lambda k: (str(k[0]), _sort_key(k[1] or 0), str(k[2] or "")))
    ]
    out: dict[str, Any] = {
        "project": proj.slug,
        "projects": [p.slug for p in all_projects(session)],
        "branch": branch,
        "choices": choices,
        "sweeps": [],
        "avg_busbw": [],
        "selected": None,
        "commit": None,
        "baseline": None,
    }
    if not choices:
        if collective:
            raise NotFound(f"no collectives benchmark {collective!r}")
        return out
    pick = next(
        (
            c
            for c in choices
            if (collective is None or c["collective"] == collective)
            and (nranks is None or c["nranks"] == nranks)
            and (backend is None or c["backend"] == backend)
        ),
        None,
    )
    if pick is None:
        raise NotFound(f"no collectives benchmark {collective!r} over {nranks} ranks on backend {backend!r}")
    out["selected"] = pick
    group = combos[(pick["collective"], pick["nranks"], pick["backend"])]
    sized = [b for b in group if "size_bytes" in b.params]
    at = _pick_commit(session, proj, commit, [b.id for b in sized] or [b.id for b in group], branch)
    if at is not None:
        base = baseline_for(session, proj, at)
        out["commit"] = _commit_json(at) | {"message": at.message}
        out["baseline"] = _commit_json(base) if base else None
        metrics = {m.id: m.name for m in repo.metrics_named(session, SIZE_METRICS)}
        commit_ids = [at.id] + ([base.id] if base else [])
        rows = repo.means_at(session, proj.id, branch, commit_ids, [b.id for b in sized], list(metrics))
        hws = {h.id: h.name for h in repo.hardware_classes_by_id(session, sorted({r[3] for r in rows}))}
        by_id = {b.id: b for b in sized}
        sweeps: dict[tuple[int, int, str], dict[int, dict[str, float]]] = {}
        for commit_id, bench_id, metric_id, hw_id, mean in rows:
            bench = by_id[bench_id]
            label = params_label(bench.params, skip=("size_bytes", "collective", "nranks", "backend"))
            by_size = sweeps.setdefault((commit_id, hw_id, label), {})
            by_size.setdefault(int(bench.params["size_bytes"]), {})[metrics[metric_id]] = mean
        out["sweeps"] = [
            {
                "hardware_class": hws[h],
                "run": "commit" if c == at.id else "baseline",
                "group": label,
                "sizes": sorted(by_size),
                **{name: [by_size[s].get(name) for s in sorted(by_size)] for name in SIZE_METRICS},
            }
            for (c, h, label), by_size in sorted(
                sweeps.items(), key=lambda kv: (hws[kv[0][1]], kv[0][2], kv[0][0] != at.id)
            )
        ]
    # The average-busbw series over commits, per hardware class.
    averaged = [b for b in group if "size_bytes" not in b.params]
    commits: CommitCache = {}
    avg = repo.metric_by_name(session, "avg_busbw")
    if averaged and avg is not None:
        entries = repo.catalog_rows(
            session,
            repo.CatalogFilter(
                proj.id, branch, metric_names=["avg_busbw"], benchmark_ids=[b.id for b in averaged]
            ),
        )
        hw_by_id = {
            h.id: h
            for h in repo.hardware_classes_by_id(session, sorted({e["hardware_class_id"] for e in entries}))
        }
        by_bench = {b.id: b for b in averaged}
        for e in entries:
            hwc = hw_by_id[e["hardware_class_id"]]
            bench = by_bench[e["benchmark_id"]]
            label = (
                hwc.name
                if len(averaged) == 1
                else f"{hwc.name} ({params_label(bench.params, skip=('collective', 'nranks', 'backend'))})"
            )
            out["avg_busbw"].append(_points(session, proj, branch, avg, TraceKey(label, bench, hwc), commits))
    return out
