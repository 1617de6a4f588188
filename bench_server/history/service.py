"""Read-side queries for plots and comparisons."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import String, cast, func, select
from sqlalchemy.orm import Session

from bench_server.catalog.repository import project_by_slug
from bench_server.kit.cache import immutable_rows
from bench_server.kit.errors import InvalidInput, NotFound
from bench_server.models import (
    Alert,
    Benchmark,
    Commit,
    Failure,
    HardwareClass,
    Job,
    Metric,
    Project,
    Result,
)

T = TypeVar("T")


def _immutable(session: Session, key: tuple[str, Any], load: Callable[[], T | None]) -> T | None:
    cache = immutable_rows(session)
    if key in cache:
        return cache[key]
    value = load()
    if value is not None:
        session.expunge(value)
        cache[key] = value
    return value


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
        bench = _immutable(session, ("benchmark", benchmark_id), lambda: session.get(Benchmark, benchmark_id))
        if bench is None:
            raise InvalidInput("benchmark_id", f"no benchmark {benchmark_id}")
    else:
        if not benchmark:
            raise InvalidInput(
                "benchmark", "give benchmark_id, or benchmark (with suite and params_hash if needed)"
            )
        q = select(Benchmark).where(Benchmark.name == benchmark)
        if suite:
            q = q.where(Benchmark.suite == suite)
        if params_hash:
            q = q.where(Benchmark.params_hash.startswith(params_hash))
        found = list(session.scalars(q.limit(20)))
        if not found:
            raise InvalidInput("benchmark", f"no benchmark {benchmark!r}")
        if len(found) > 1:
            options = ", ".join(f"{b.suite}/{b.params_hash[:12]}" for b in found)
            raise InvalidInput(
                "params_hash", f"benchmark {benchmark!r} has several parameter sets: {options}"
            )
        bench = found[0]
    met = _immutable(
        session,
        ("metric", metric),
        lambda: session.scalars(select(Metric).where(Metric.name == metric)).one_or_none(),
    )
    if met is None:
        raise InvalidInput("metric", f"no metric {metric!r}")
    hw = _immutable(
        session,
        ("hardware_class", hardware_class),
        lambda: session.scalars(
            select(HardwareClass).where(HardwareClass.name == hardware_class)
        ).one_or_none(),
    )
    if hw is None:
        raise InvalidInput("hardware_class", f"no hardware class {hardware_class!r}")
    return SeriesKey(proj, branch or proj.default_branch, bench, met, hw)


def series(session: Session, key: SeriesKey, *, with_samples: bool = False) -> dict[str, Any]:
    """One point per commit in first-parent order: the mean over that commit's results.

    Columnar (parallel arrays), which is what plots want and what encodes fast: a 2,000-point
    series is one aggregate query and a handful of lists.
    """
    where = (
        Result.project_id == key.project.id,
        Result.benchmark_id == key.benchmark.id,
        Result.metric_id == key.metric.id,
        Result.hardware_class_id == key.hardware_class.id,
        Result.branch == key.branch,
    )
    conn = session.connection()  # Core rows: no ORM loading for thousands of tuples
    # Aggregate first, in index order (an index-only scan on PostgreSQL), then attach commits.
    per_commit = (
        select(Result.commit_id, func.avg(Result.value).label("value"), func.count().label("n"))
        .where(*where)
        .group_by(Result.commit_id)
        .subquery()
    )
    rows = conn.execute(
        select(
            Commit.sha,
            Commit.order_key,
            cast(Commit.committed_at, String),
            per_commit.c.value,
            per_commit.c.n,
        )
        .join(per_commit, per_commit.c.commit_id == Commit.id)
        .order_by(Commit.order_key, Commit.id)
    ).all()
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
        sample_rows = conn.execute(
            select(Commit.sha, Result.samples, Result.value)
            .join(Commit, Commit.id == Result.commit_id)
            .where(*where)
            .order_by(Result.id)
        )
        for sha, samples, value in sample_rows:
            by_sha[sha].extend(samples if samples else [value])
        out["samples"] = [by_sha[sha] for sha in commits]
    return out


def find_commit(session: Session, project: Project, sha: str) -> Commit:
    matches = list(
        session.scalars(
            select(Commit).where(Commit.project_id == project.id, Commit.sha.startswith(sha.lower())).limit(2)
        )
    )
    if not matches:
        raise NotFound(f"no commit {sha!r} in project {project.slug!r}")
    if len(matches) > 1:
        raise InvalidInput("sha", f"{sha!r} names more than one commit; give more digits")
    return matches[0]


def baseline_for(session: Session, project: Project, commit: Commit) -> Commit | None:
    """The first parent when we have results for it, else the newest earlier commit on the
    default branch that has results."""
    has_results = select(Result.id).where(Result.commit_id == Commit.id).exists()
    if commit.parents:
        parent = session.scalars(
            select(Commit).where(
                Commit.project_id == project.id, Commit.sha == commit.parents[0], has_results
            )
        ).one_or_none()
        if parent is not None:
            return parent
    return session.scalars(
        select(Commit)
        .where(
            Commit.project_id == project.id,
            Commit.order_key < commit.order_key,
            Commit.branch == project.default_branch,
            has_results,
        )
        .order_by(Commit.order_key.desc(), Commit.id.desc())
        .limit(1)
    ).one_or_none()


def _means(session: Session, commit_id: int) -> dict[tuple[int, int, int], tuple[float, int]]:
    rows = session.execute(
        select(
            Result.benchmark_id,
            Result.metric_id,
            Result.hardware_class_id,
            func.avg(Result.value),
            func.count(),
        )
        .where(Result.commit_id == commit_id)
        .group_by(Result.benchmark_id, Result.metric_id, Result.hardware_class_id)
    )
    return {(b, m, h): (float(v), int(n)) for b, m, h, v, n in rows}


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
    current = _means(session, commit.id)
    base = _means(session, baseline.id) if baseline else {}

    bench_ids = {k[0] for k in current} | {k[0] for k in base}
    metric_ids = {k[1] for k in current} | {k[1] for k in base}
    hw_ids = {k[2] for k in current} | {k[2] for k in base}
    benches = {b.id: b for b in session.scalars(select(Benchmark).where(Benchmark.id.in_(bench_ids)))}
    metrics = {m.id: m for m in session.scalars(select(Metric).where(Metric.id.in_(metric_ids)))}
    hws = {h.id: h.name for h in session.scalars(select(HardwareClass).where(HardwareClass.id.in_(hw_ids)))}

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
        for f in session.scalars(select(Failure).where(Failure.commit_id == commit.id).order_by(Failure.id))
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
        for j in session.scalars(select(Job).where(Job.commit_id == commit.id).order_by(Job.id))
    ]
    alerts = [
        {"id": a.id, "kind": a.kind, "state": a.state, "magnitude": a.magnitude, "metric_id": a.metric_id}
        for a in session.scalars(
            select(Alert).where(Alert.first_bad_commit_id == commit.id).order_by(Alert.id)
        )
    ]
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
