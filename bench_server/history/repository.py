"""SQL for the read side: series, commits and their baselines, and what a commit page shows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, String, cast, func, or_, select
from sqlalchemy.orm import Session

from bench_server.kit.cache import immutable_rows
from bench_server.kit.paging import Listing
from bench_server.models import (
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

COMMIT_COLUMNS = ["id", "sha", "branch", "parents", "author", "committed_at", "order"]
# (benchmark id, metric id, hardware class id) -> (mean value, number of results)
Means = dict[tuple[int, int, int], tuple[float, int]]


def immutable(session: Session, key: tuple[str, Any], load: Callable[[], T | None]) -> T | None:
    """A row that never changes once committed, remembered for the process (kit/cache.py)."""
    cache = immutable_rows(session)
    if key in cache:
        found: T = cache[key]
        return found
    value = load()
    if value is not None:
        session.expunge(value)
        cache[key] = value
    return value


def benchmark_by_id(session: Session, benchmark_id: int) -> Benchmark | None:
    return immutable(session, ("benchmark", benchmark_id), lambda: session.get(Benchmark, benchmark_id))


def benchmarks_named(
    session: Session, name: str, suite: str | None, params_hash: str | None, limit: int
) -> list[Benchmark]:
    query = select(Benchmark).where(Benchmark.name == name)
    if suite:
        query = query.where(Benchmark.suite == suite)
    if params_hash:
        query = query.where(Benchmark.params_hash.startswith(params_hash))
    return list(session.scalars(query.limit(limit)))


def metric_by_name(session: Session, name: str) -> Metric | None:
    return immutable(
        session,
        ("metric", name),
        lambda: session.scalars(select(Metric).where(Metric.name == name)).one_or_none(),
    )


def hardware_class_by_name(session: Session, name: str) -> HardwareClass | None:
    return immutable(
        session,
        ("hardware_class", name),
        lambda: session.scalars(select(HardwareClass).where(HardwareClass.name == name)).one_or_none(),
    )


def _series_where(
    project_id: int, benchmark_id: int, metric_id: int, hardware_class_id: int, branch: str
) -> tuple[ColumnElement[bool], ...]:
    return (
        Result.project_id == project_id,
        Result.benchmark_id == benchmark_id,
        Result.metric_id == metric_id,
        Result.hardware_class_id == hardware_class_id,
        Result.branch == branch,
    )


def series_points(
    session: Session, project_id: int, benchmark_id: int, metric_id: int, hardware_class_id: int, branch: str
) -> Sequence[Any]:
    """(sha, order key, committed_at as text, mean value, n) per commit, in first-parent order."""
    where = _series_where(project_id, benchmark_id, metric_id, hardware_class_id, branch)
    conn = session.connection()  # Core rows: no ORM loading for thousands of tuples
    # Aggregate first, in index order (an index-only scan on PostgreSQL), then attach commits.
    per_commit = (
        select(Result.commit_id, func.avg(Result.value).label("value"), func.count().label("n"))
        .where(*where)
        .group_by(Result.commit_id)
        .subquery()
    )
    return conn.execute(
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


def series_samples(
    session: Session, project_id: int, benchmark_id: int, metric_id: int, hardware_class_id: int, branch: str
) -> Sequence[Any]:
    """(sha, samples, value) of every result of the series, oldest first."""
    where = _series_where(project_id, benchmark_id, metric_id, hardware_class_id, branch)
    return (
        session.connection()
        .execute(
            select(Commit.sha, Result.samples, Result.value)
            .join(Commit, Commit.id == Result.commit_id)
            .where(*where)
            .order_by(Result.id)
        )
        .all()
    )


@dataclass(frozen=True)
class ValueSlice:
    """Which results of one benchmark on one hardware class and branch to read: only some
    metrics, one machine, one commit, or the commits up to an order key (a merge-base)."""

    metric_ids: tuple[int, ...] | None = None
    machine_id: int | None = None
    commit_id: int | None = None
    until_order_key: int | None = None


def series_values(
    session: Session,
    project_id: int,
    benchmark_id: int,
    hardware_class_id: int,
    branch: str,
    only: ValueSlice,
) -> Sequence[Any]:
    """(metric id, machine id, commit id, order key, value) of every result of one benchmark on
    one hardware class and branch, in first-parent order (then by commit, then by result)."""
    query = (
        select(Result.metric_id, Result.machine_id, Result.commit_id, Commit.order_key, Result.value)
        .join(Commit, Commit.id == Result.commit_id)
        .where(
            Result.project_id == project_id,
            Result.benchmark_id == benchmark_id,
            Result.hardware_class_id == hardware_class_id,
            Result.branch == branch,
        )
    )
    if only.metric_ids is not None:
        query = query.where(Result.metric_id.in_(only.metric_ids))
    if only.machine_id is not None:
        query = query.where(Result.machine_id == only.machine_id)
    if only.commit_id is not None:
        query = query.where(Result.commit_id == only.commit_id)
    if only.until_order_key is not None:
        query = query.where(Commit.order_key <= only.until_order_key)
    return session.execute(query.order_by(Commit.order_key, Commit.id, Result.id)).all()


def benchmark_outcomes(
    session: Session,
    project_id: int,
    hardware_class_id: int,
    branch: str,
    suite: str,
    benchmark_id: int | None,
) -> Sequence[Any]:
    """(commit id, order key, failed) of every commit where a benchmark ran on one hardware class
    and branch, in first-parent order. Failed: a failure was recorded for it there. With no
    benchmark, the suite's own failures (setup, a lost runner) against results of any of its
    benchmarks."""
    passed = select(Result.commit_id).where(
        Result.project_id == project_id,
        Result.hardware_class_id == hardware_class_id,
        Result.branch == branch,
    )
    if benchmark_id is None:
        passed = passed.where(Result.benchmark_id.in_(select(Benchmark.id).where(Benchmark.suite == suite)))
    else:
        passed = passed.where(Result.benchmark_id == benchmark_id)
    failed = select(Failure.commit_id).where(
        Failure.project_id == project_id,
        Failure.hardware_class_id == hardware_class_id,
        Failure.branch == branch,
        Failure.suite == suite,
        Failure.benchmark_id.is_(None) if benchmark_id is None else Failure.benchmark_id == benchmark_id,
    )
    return session.execute(
        select(Commit.id, Commit.order_key, Commit.id.in_(failed))
        .where(Commit.project_id == project_id, or_(Commit.id.in_(passed), Commit.id.in_(failed)))
        .order_by(Commit.order_key, Commit.id)
    ).all()


def commits_by_prefix(session: Session, project_id: int, sha: str, limit: int) -> list[Commit]:
    return list(
        session.scalars(
            select(Commit)
            .where(Commit.project_id == project_id, Commit.sha.startswith(sha.lower()))
            .limit(limit)
        )
    )


def _has_results() -> ColumnElement[bool]:
    return select(Result.id).where(Result.commit_id == Commit.id).exists()


def commit_with_results(session: Session, project_id: int, sha: str) -> Commit | None:
    return session.scalars(
        select(Commit).where(Commit.project_id == project_id, Commit.sha == sha, _has_results())
    ).one_or_none()


def previous_with_results(session: Session, project: Project, commit: Commit) -> Commit | None:
    """The newest commit on the project's default branch before `commit` that has results."""
    return session.scalars(
        select(Commit)
        .where(
            Commit.project_id == project.id,
            Commit.order_key < commit.order_key,
            Commit.branch == project.default_branch,
            _has_results(),
        )
        .order_by(Commit.order_key.desc(), Commit.id.desc())
        .limit(1)
    ).one_or_none()


def means(session: Session, commit_id: int) -> Means:
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


def benchmarks_by_id(session: Session, ids: set[int]) -> dict[int, Benchmark]:
    return {b.id: b for b in session.scalars(select(Benchmark).where(Benchmark.id.in_(ids)))}


def metrics_by_id(session: Session, ids: set[int]) -> dict[int, Metric]:
    return {m.id: m for m in session.scalars(select(Metric).where(Metric.id.in_(ids)))}


def hardware_names_by_id(session: Session, ids: set[int]) -> dict[int, str]:
    return {h.id: h.name for h in session.scalars(select(HardwareClass).where(HardwareClass.id.in_(ids)))}


def failures_of(session: Session, commit_id: int) -> list[Failure]:
    return list(session.scalars(select(Failure).where(Failure.commit_id == commit_id).order_by(Failure.id)))


def jobs_of(session: Session, commit_id: int) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.commit_id == commit_id).order_by(Job.id)))


def commits_listing(project_id: int, branch: str | None) -> Listing:
    query = select(
        Commit.id,
        Commit.sha,
        Commit.branch,
        Commit.parents,
        Commit.author,
        Commit.committed_at,
        Commit.order_key,
    ).where(Commit.project_id == project_id)
    if branch:
        query = query.where(Commit.branch == branch)
    return Listing("commits", query, Commit.id, COMMIT_COLUMNS)


def series_keys(session: Session, limit: int) -> Sequence[Any]:
    """(project slug, benchmark id, suite, benchmark name, metric, hardware class) of series
    that have results."""
    return session.execute(
        select(Project.slug, Benchmark.id, Benchmark.suite, Benchmark.name, Metric.name, HardwareClass.name)
        .distinct()
        .select_from(Result)
        .join(Project, Project.id == Result.project_id)
        .join(Benchmark, Benchmark.id == Result.benchmark_id)
        .join(Metric, Metric.id == Result.metric_id)
        .join(HardwareClass, HardwareClass.id == Result.hardware_class_id)
        .order_by(Project.slug, Benchmark.suite, Benchmark.name, Metric.name)
        .limit(limit)
    ).all()
