"""SQL for the read side: series, commits and their baselines, what a commit page shows, the
series catalog, and the reads behind the website's pages (alerts, incidents and annotations
included)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, String, and_, bindparam, case, cast, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from bench_server.kit.cache import immutable_rows
from bench_server.kit.paging import Listing
from bench_server.models import (
    Alert,
    Annotation,
    Benchmark,
    Commit,
    Failure,
    HardwareClass,
    Incident,
    IngestBatch,
    Job,
    Machine,
    Metric,
    Project,
    Result,
    Runner,
    Series,
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
    that have results, from the series catalog."""
    return session.execute(
        select(Project.slug, Benchmark.id, Benchmark.suite, Benchmark.name, Metric.name, HardwareClass.name)
        .distinct()
        .select_from(Series)
        .join(Project, Project.id == Series.project_id)
        .join(Benchmark, Benchmark.id == Series.benchmark_id)
        .join(Metric, Metric.id == Series.metric_id)
        .join(HardwareClass, HardwareClass.id == Series.hardware_class_id)
        .order_by(Project.slug, Benchmark.suite, Benchmark.name, Metric.name)
        .limit(limit)
    ).all()


# --------------------------------------------------------------------------------------
# The series catalog (models/series.py): written by ingest, read by the index and the website.

SERIES_KEY_COLUMNS = ["project_id", "benchmark_id", "metric_id", "hardware_class_id", "branch"]


def series_present_at(
    session: Session, project_id: int, commit_id: int, hardware_class_id: int, branch: str
) -> set[tuple[int, int]]:
    """(benchmark id, metric id) of the series that already have a result at this commit on this
    hardware class and branch (read before a batch's results are written)."""
    rows = session.execute(
        select(Result.benchmark_id, Result.metric_id)
        .where(
            Result.commit_id == commit_id,
            Result.project_id == project_id,
            Result.hardware_class_id == hardware_class_id,
            Result.branch == branch,
        )
        .distinct()
    )
    return {(int(b), int(m)) for b, m in rows}


# A batch's rows share its project, branch, class, commit and time; they differ in these.
PER_SERIES_COLUMNS = ["benchmark_id", "metric_id", "last_value", "last_n", "point_count", "result_count"]
PER_BATCH_COLUMNS = [
    "project_id", "hardware_class_id", "branch", "first_commit_id", "first_order_key", "last_commit_id",
    "last_order_key", "updated_at", "created_at",
]  # fmt: skip


def _upsert_statement(module: Any) -> Any:
    table = Series.__table__
    if module is postgresql:
        # One statement for the whole batch: the batch's values once, the per-series ones as one
        # array per column, unnested.
        arrays = [cast(bindparam(c), postgresql.ARRAY(table.c[c].type)) for c in PER_SERIES_COLUMNS]
        rows = func.unnest(*arrays).table_valued(*PER_SERIES_COLUMNS).render_derived(name="batch")
        values: list[Any] = [cast(bindparam(c), table.c[c].type) for c in PER_BATCH_COLUMNS]
        values += [rows.c[c] for c in PER_SERIES_COLUMNS]
        stmt = module.insert(table).from_select([*PER_BATCH_COLUMNS, *PER_SERIES_COLUMNS], select(*values))
    else:
        stmt = module.insert(table)
    new, old = stmt.excluded, table.c
    later = or_(
        new.last_order_key > old.last_order_key,
        and_(new.last_order_key == old.last_order_key, new.last_commit_id > old.last_commit_id),
    )
    earlier = or_(
        new.first_order_key < old.first_order_key,
        and_(new.first_order_key == old.first_order_key, new.first_commit_id < old.first_commit_id),
    )
    same = new.last_commit_id == old.last_commit_id
    joined_mean = (old.last_value * old.last_n + new.last_value * new.last_n) / (old.last_n + new.last_n)
    return stmt.on_conflict_do_update(
        index_elements=SERIES_KEY_COLUMNS,
        set_={
            "last_commit_id": case((later, new.last_commit_id), else_=old.last_commit_id),
            "last_order_key": case((later, new.last_order_key), else_=old.last_order_key),
            "last_value": case((later, new.last_value), (same, joined_mean), else_=old.last_value),
            "last_n": case((later, new.last_n), (same, old.last_n + new.last_n), else_=old.last_n),
            "first_commit_id": case((earlier, new.first_commit_id), else_=old.first_commit_id),
            "first_order_key": case((earlier, new.first_order_key), else_=old.first_order_key),
            "point_count": old.point_count + new.point_count,
            "result_count": old.result_count + new.result_count,
            "updated_at": new.updated_at,
        },
    )


# One statement per dialect, built once so SQLAlchemy compiles it once (a multi-row VALUES
# statement is compiled anew for every batch: measured at 470 ms for a 1,000-series batch). On
# PostgreSQL it takes the batch as column arrays (measured: 7 ms for 1,000 series, against 35 ms
# as an executemany); SQLite gets an executemany.
_UPSERTS = {"postgresql": _upsert_statement(postgresql), "sqlite": _upsert_statement(sqlite)}


def upsert_series(session: Session, batch: dict[str, Any], rows: Sequence[dict[str, Any]]) -> None:
    """INSERT each series row (`batch`: PER_BATCH_COLUMNS, each row: PER_SERIES_COLUMNS), or fold
    it into the stored one: the later commit (first-parent order, then id) wins the last-commit
    columns, the earlier one the first-commit columns, a second batch at the last commit joins its
    mean, and the counts add up. Every SET expression reads the stored row as it was, on
    PostgreSQL and SQLite alike."""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        arrays = {c: [r[c] for r in rows] for c in PER_SERIES_COLUMNS}
        session.execute(_UPSERTS["postgresql"], {**batch, **arrays})
    else:
        session.execute(_UPSERTS["sqlite"], [{**batch, **r} for r in rows])


@dataclass(frozen=True)
class CatalogFilter:
    project_id: int
    branch: str
    hardware_class_ids: Sequence[int] | None = None
    metric_names: Sequence[str] | None = None
    benchmark_ids: Sequence[int] | None = None
    suite: str | None = None
    benchmark_name: str | None = None


_FIRST = aliased(Commit, name="series_first_commit")
_LAST = aliased(Commit, name="series_last_commit")


def _with_catalog_joins(query: Select[*tuple[Any, ...]]) -> Select[*tuple[Any, ...]]:
    """The names a catalog row is shown with: benchmark, metric, class, first and last commit."""
    return (
        query.join(Benchmark, Benchmark.id == Series.benchmark_id)
        .join(Metric, Metric.id == Series.metric_id)
        .join(HardwareClass, HardwareClass.id == Series.hardware_class_id)
        .join(_FIRST, _FIRST.id == Series.first_commit_id)
        .join(_LAST, _LAST.id == Series.last_commit_id)
    )


def _catalog_select() -> Select[*tuple[Any, ...]]:
    return _with_catalog_joins(
        select(
            Series.id,
            Series.project_id,
            Series.branch,
            Series.benchmark_id,
            Benchmark.suite,
            Benchmark.name.label("benchmark"),
            Benchmark.params,
            Benchmark.params_hash,
            Series.metric_id,
            Metric.name.label("metric"),
            Metric.unit,
            Metric.direction,
            Series.hardware_class_id,
            HardwareClass.name.label("hardware_class"),
            HardwareClass.kind.label("hardware_kind"),
            Series.first_commit_id,
            Series.first_order_key,
            _FIRST.sha.label("first_sha"),
            Series.last_commit_id,
            _LAST.sha.label("last_sha"),
            _LAST.committed_at.label("last_committed_at"),
            Series.last_order_key,
            Series.last_value,
            Series.last_n,
            Series.point_count,
            Series.result_count,
            Series.updated_at,
        )
    )


def catalog_rows(session: Session, where: CatalogFilter, limit: int | None = None) -> list[dict[str, Any]]:
    """Catalog entries with their names, by suite, benchmark, metric and hardware class."""
    query = _catalog_select().where(Series.project_id == where.project_id, Series.branch == where.branch)
    if where.hardware_class_ids is not None:
        query = query.where(Series.hardware_class_id.in_(list(where.hardware_class_ids)))
    if where.metric_names is not None:
        query = query.where(Metric.name.in_(list(where.metric_names)))
    if where.benchmark_ids is not None:
        query = query.where(Series.benchmark_id.in_(list(where.benchmark_ids)))
    if where.suite:
        query = query.where(Benchmark.suite == where.suite)
    if where.benchmark_name:
        query = query.where(Benchmark.name == where.benchmark_name)
    query = query.order_by(Benchmark.suite, Benchmark.name, Metric.name, HardwareClass.name, Series.id)
    if limit is not None:
        query = query.limit(limit)
    return [dict(r._mapping) for r in session.execute(query)]


SERIES_CATALOG_COLUMNS = [
    "id",
    "project",
    "branch",
    "suite",
    "benchmark",
    "benchmark_id",
    "params",
    "metric",
    "unit",
    "direction",
    "hardware_class",
    "first_sha",
    "last_sha",
    "last_value",
    "point_count",
    "result_count",
    "updated_at",
]


def series_catalog_listing(
    project_id: int | None,
    branch: str | None,
    suite: str | None,
    metric: str | None,
    hardware_class: str | None,
) -> Listing:
    query = _with_catalog_joins(
        select(
            Series.id,
            Project.slug.label("project"),
            Series.branch,
            Benchmark.suite,
            Benchmark.name.label("benchmark"),
            Series.benchmark_id,
            Benchmark.params,
            Metric.name.label("metric"),
            Metric.unit,
            Metric.direction,
            HardwareClass.name.label("hardware_class"),
            _FIRST.sha.label("first_sha"),
            _LAST.sha.label("last_sha"),
            Series.last_value,
            Series.point_count,
            Series.result_count,
            Series.updated_at,
        ).join(Project, Project.id == Series.project_id)
    )
    if project_id is not None:
        query = query.where(Series.project_id == project_id)
    if branch:
        query = query.where(Series.branch == branch)
    if suite:
        query = query.where(Benchmark.suite == suite)
    if metric:
        query = query.where(Metric.name == metric)
    if hardware_class:
        query = query.where(HardwareClass.name == hardware_class)
    return Listing("series", query, Series.id, SERIES_CATALOG_COLUMNS, lambda r: dict(r._mapping))


def catalog_entry(
    session: Session, project_id: int, branch: str, benchmark_id: int, metric_id: int, hardware_class_id: int
) -> Series | None:
    return session.scalars(
        select(Series).where(
            Series.project_id == project_id,
            Series.branch == branch,
            Series.benchmark_id == benchmark_id,
            Series.metric_id == metric_id,
            Series.hardware_class_id == hardware_class_id,
        )
    ).one_or_none()


# --------------------------------------------------------------------------------------
# Reads for the website's pages.


def series_aggregates(
    session: Session,
    project_id: int,
    benchmark_id: int,
    metric_id: int,
    hardware_class_id: int,
    branch: str,
    commit_ids: Sequence[int] | None = None,
) -> Sequence[Any]:
    """(commit id, mean, count, min, max) of the series' results per commit, at these commits
    or all (an index-only scan on PostgreSQL; the commits are read once per page with
    `commit_summaries`)."""
    where = _series_where(project_id, benchmark_id, metric_id, hardware_class_id, branch)
    if commit_ids is not None:
        where = (*where, Result.commit_id.in_(list(commit_ids)))
    return (
        session.connection()
        .execute(
            select(
                Result.commit_id,
                func.avg(Result.value),
                func.count(),
                func.min(Result.value),
                func.max(Result.value),
            )
            .where(*where)
            .group_by(Result.commit_id)
        )
        .all()
    )


def commit_summaries(session: Session, project_id: int, first_order: int, last_order: int) -> dict[int, Any]:
    """id -> (sha, order key, committed_at, author, the start of the message) of the project's
    commits in this first-parent range (one index range scan, whatever the number of commits)."""
    rows = session.connection().execute(
        select(
            Commit.id,
            Commit.sha,
            Commit.order_key,
            Commit.committed_at,
            Commit.author,
            func.substr(Commit.message, 1, MESSAGE_PREVIEW),
        ).where(Commit.project_id == project_id, Commit.order_key.between(first_order, last_order))
    )
    return {int(r[0]): r[1:] for r in rows}


MESSAGE_PREVIEW = 160


def samples_at(
    session: Session,
    project_id: int,
    benchmark_id: int,
    metric_id: int,
    hardware_class_id: int,
    branch: str,
    commit_ids: Sequence[int],
) -> list[tuple[int, list[Any] | None, float]]:
    """(commit id, samples, value) of the series' results at these commits."""
    if not commit_ids:
        return []
    where = _series_where(project_id, benchmark_id, metric_id, hardware_class_id, branch)
    rows = session.connection().execute(
        select(Result.commit_id, Result.samples, Result.value).where(
            *where, Result.commit_id.in_(list(commit_ids))
        )
    )
    return [(int(c), s, float(v)) for c, s, v in rows]


def recent_commits(session: Session, project_id: int, branch: str, limit: int) -> list[Commit]:
    """The newest commits of a branch in first-parent order, newest first."""
    return list(
        session.scalars(
            select(Commit)
            .where(Commit.project_id == project_id, Commit.branch == branch)
            .order_by(Commit.order_key.desc(), Commit.id.desc())
            .limit(limit)
        )
    )


def newest_order_key(session: Session, project_id: int, branch: str) -> int | None:
    value = session.scalar(
        select(func.max(Series.last_order_key)).where(
            Series.project_id == project_id, Series.branch == branch
        )
    )
    return int(value) if value is not None else None


def result_counts_at(session: Session, commit_ids: Sequence[int]) -> dict[tuple[int, int], int]:
    """(commit id, hardware class id) -> results stored, from the ingest batches (small) rather
    than the results."""
    if not commit_ids:
        return {}
    rows = session.execute(
        select(IngestBatch.commit_id, Machine.hardware_class_id, func.sum(IngestBatch.n_results))
        .join(Machine, Machine.id == IngestBatch.machine_id)
        .where(IngestBatch.commit_id.in_(list(commit_ids)))
        .group_by(IngestBatch.commit_id, Machine.hardware_class_id)
    )
    return {(int(c), int(h)): int(n or 0) for c, h, n in rows}


def failure_counts_at(session: Session, commit_ids: Sequence[int]) -> dict[tuple[int, int], int]:
    if not commit_ids:
        return {}
    rows = session.execute(
        select(Failure.commit_id, Failure.hardware_class_id, func.count())
        .where(Failure.commit_id.in_(list(commit_ids)))
        .group_by(Failure.commit_id, Failure.hardware_class_id)
    )
    return {(int(c), int(h)): int(n) for c, h, n in rows}


def means_at(
    session: Session,
    project_id: int,
    branch: str,
    commit_ids: Sequence[int],
    benchmark_ids: Sequence[int],
    metric_ids: Sequence[int],
) -> list[tuple[int, int, int, int, float]]:
    """(commit, benchmark, metric, hardware class, mean) at these commits, for these benchmarks
    and metrics (sparklines and the serving and collectives figures)."""
    if not commit_ids or not benchmark_ids or not metric_ids:
        return []
    rows = session.execute(
        select(
            Result.commit_id,
            Result.benchmark_id,
            Result.metric_id,
            Result.hardware_class_id,
            func.avg(Result.value),
        )
        .where(
            Result.project_id == project_id,
            Result.branch == branch,
            Result.commit_id.in_(list(commit_ids)),
            Result.benchmark_id.in_(list(benchmark_ids)),
            Result.metric_id.in_(list(metric_ids)),
        )
        .group_by(Result.commit_id, Result.benchmark_id, Result.metric_id, Result.hardware_class_id)
    )
    return [(int(c), int(b), int(m), int(h), float(v)) for c, b, m, h, v in rows]


def benchmarks_of(session: Session, suite: str, name: str | None = None) -> list[Benchmark]:
    query = select(Benchmark).where(Benchmark.suite == suite)
    if name is not None:
        query = query.where(Benchmark.name == name)
    return list(session.scalars(query.order_by(Benchmark.name, Benchmark.id)))


def metrics_named(session: Session, names: Sequence[str]) -> list[Metric]:
    return list(session.scalars(select(Metric).where(Metric.name.in_(list(names)))))


def hardware_classes_by_id(session: Session, ids: Sequence[int]) -> list[HardwareClass]:
    if not ids:
        return []
    return list(session.scalars(select(HardwareClass).where(HardwareClass.id.in_(list(ids)))))


def hardware_classes_named(session: Session, names: Sequence[str]) -> list[HardwareClass]:
    return list(session.scalars(select(HardwareClass).where(HardwareClass.name.in_(list(names)))))


def commits_by_id(session: Session, ids: Sequence[int]) -> dict[int, Commit]:
    if not ids:
        return {}
    return {c.id: c for c in session.scalars(select(Commit).where(Commit.id.in_(list(ids))))}


def newest_commit_with(
    session: Session, project_id: int, branch: str, benchmark_ids: Sequence[int]
) -> Commit | None:
    """The newest commit (first-parent order) at which any of these benchmarks has a series
    point, from the catalog."""
    if not benchmark_ids:
        return None
    return session.scalars(
        select(Commit)
        .join(Series, Series.last_commit_id == Commit.id)
        .where(
            Series.project_id == project_id,
            Series.branch == branch,
            Series.benchmark_id.in_(list(benchmark_ids)),
        )
        .order_by(Commit.order_key.desc(), Commit.id.desc())
        .limit(1)
    ).first()


def failures_in_series(
    session: Session,
    project_id: int,
    benchmark_ids: Sequence[int],
    hardware_class_ids: Sequence[int],
    branch: str,
    suite: str,
) -> list[dict[str, Any]]:
    """Failures of these benchmarks on these hardware classes, and those of the whole suite (no
    benchmark: the engine did not start, the runner was lost), with their commit."""
    if not benchmark_ids or not hardware_class_ids:
        return []
    rows = session.execute(
        select(
            Failure.id,
            Failure.benchmark_id,
            Failure.hardware_class_id,
            Failure.failure_class,
            func.substr(Failure.message, 1, MESSAGE_PREVIEW).label("message"),
            Commit.id.label("commit_id"),
            Commit.sha,
            Commit.order_key,
        )
        .join(Commit, Commit.id == Failure.commit_id)
        .where(
            Failure.project_id == project_id,
            or_(
                Failure.benchmark_id.in_(list(benchmark_ids)),
                and_(Failure.benchmark_id.is_(None), Failure.suite == suite),
            ),
            Failure.hardware_class_id.in_(list(hardware_class_ids)),
            Failure.branch == branch,
        )
        .order_by(Commit.order_key, Failure.id)
    )
    return [dict(r._mapping) for r in rows]


def failures_with_names(session: Session, commit_id: int) -> list[dict[str, Any]]:
    """A commit's failures with their benchmark and hardware class names and log excerpt."""
    rows = session.execute(
        select(
            Failure.id,
            Failure.suite,
            Benchmark.name.label("benchmark"),
            Benchmark.params,
            HardwareClass.name.label("hardware_class"),
            Failure.failure_class,
            Failure.message,
            Failure.log_excerpt,
            Failure.job_id,
        )
        .outerjoin(Benchmark, Benchmark.id == Failure.benchmark_id)
        .join(HardwareClass, HardwareClass.id == Failure.hardware_class_id)
        .where(Failure.commit_id == commit_id)
        .order_by(Failure.suite, HardwareClass.name, Failure.id)
    )
    return [dict(r._mapping) for r in rows]


def jobs_with_names(session: Session, commit_id: int) -> list[dict[str, Any]]:
    """A commit's jobs with hardware class and runner names, and the log (the service keeps
    only its tail)."""
    rows = session.execute(
        select(
            Job.id,
            Job.suite,
            HardwareClass.name.label("hardware_class"),
            Job.state,
            Job.attempt,
            Job.max_attempts,
            Job.failure_class,
            Job.message,
            Job.log,
            Job.created_at,
            Job.started_at,
            Job.finished_at,
            Runner.name.label("runner"),
        )
        .join(HardwareClass, HardwareClass.id == Job.hardware_class_id)
        .outerjoin(Runner, Runner.id == Job.runner_id)
        .where(Job.commit_id == commit_id)
        .order_by(Job.suite, HardwareClass.name, Job.id)
    )
    return [dict(r._mapping) for r in rows]


# --------------------------------------------------------------------------------------
# Alerts, incidents and annotations, as the regression-detection tables hold them today. Only
# the columns that exist in models/alerts.py now are read (the analysis domain may add more).

OPEN_ALERT_STATES = ("new", "acknowledged")


_BAD_COMMIT = aliased(Commit, name="first_bad_commit")
_GOOD_COMMIT = aliased(Commit, name="last_good_commit")


def _alert_select() -> Select[*tuple[Any, ...]]:
    bad, good = _BAD_COMMIT, _GOOD_COMMIT
    return (
        select(
            Alert.id,
            Alert.kind,
            Alert.state,
            Alert.branch,
            # The pages' names for the analysis domain's columns.
            Alert.relative_change.label("magnitude"),
            Alert.p_value.label("significance"),
            Alert.created_at,
            Alert.updated_at,
            Alert.incident_id,
            Incident.title.label("incident_title"),
            Alert.benchmark_id,
            Benchmark.suite,
            Benchmark.name.label("benchmark"),
            Benchmark.params,
            Alert.metric_id,
            Metric.name.label("metric"),
            Metric.unit,
            Metric.direction,
            Alert.hardware_class_id,
            HardwareClass.name.label("hardware_class"),
            Alert.first_bad_commit_id,
            bad.sha.label("first_bad_sha"),
            bad.order_key.label("first_bad_order"),
            func.substr(bad.message, 1, MESSAGE_PREVIEW).label("first_bad_message"),
            bad.author.label("first_bad_author"),
            good.sha.label("last_good_sha"),
        )
        .outerjoin(Incident, Incident.id == Alert.incident_id)
        .outerjoin(Benchmark, Benchmark.id == Alert.benchmark_id)
        .outerjoin(Metric, Metric.id == Alert.metric_id)
        .outerjoin(HardwareClass, HardwareClass.id == Alert.hardware_class_id)
        .outerjoin(bad, bad.id == Alert.first_bad_commit_id)
        .outerjoin(good, good.id == Alert.last_good_commit_id)
    )


def alerts_for_commit(session: Session, commit_id: int) -> list[dict[str, Any]]:
    """Alerts whose suspect range ends at this commit (it is their first bad commit)."""
    query = _alert_select().where(Alert.first_bad_commit_id == commit_id).order_by(Alert.id)
    return [dict(r._mapping) for r in session.execute(query)]


def alerts_matching(
    session: Session,
    project_id: int,
    *,
    states: Sequence[str] | None = None,
    hardware_class_id: int | None = None,
    suite: str | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Alerts of a project, newest suspect commit first."""
    query = _alert_select().where(Alert.project_id == project_id)
    if states:
        query = query.where(Alert.state.in_(list(states)))
    if hardware_class_id is not None:
        query = query.where(Alert.hardware_class_id == hardware_class_id)
    if suite:
        query = query.where(Benchmark.suite == suite)
    query = query.order_by(_BAD_COMMIT.order_key.desc().nulls_last(), Alert.id.desc()).limit(limit)
    return [dict(r._mapping) for r in session.execute(query)]


def alerts_in_series(
    session: Session,
    project_id: int,
    benchmark_ids: Sequence[int],
    metric_id: int,
    hardware_class_ids: Sequence[int],
    branch: str,
) -> list[dict[str, Any]]:
    """Alerts raised on these series (a null branch on the alert matches any branch)."""
    if not benchmark_ids or not hardware_class_ids:
        return []
    query = _alert_select().where(
        Alert.project_id == project_id,
        Alert.benchmark_id.in_(list(benchmark_ids)),
        Alert.metric_id == metric_id,
        Alert.hardware_class_id.in_(list(hardware_class_ids)),
        or_(Alert.branch == branch, Alert.branch.is_(None)),
    )
    return [dict(r._mapping) for r in session.execute(query.order_by(Alert.id))]


def open_alert_hardware(session: Session, project_id: int, kinds: Sequence[str]) -> dict[int, int]:
    """hardware class id -> open alerts of these kinds."""
    rows = session.execute(
        select(Alert.hardware_class_id, func.count())
        .where(
            Alert.project_id == project_id,
            Alert.state.in_(OPEN_ALERT_STATES),
            Alert.kind.in_(list(kinds)),
            Alert.hardware_class_id.is_not(None),
        )
        .group_by(Alert.hardware_class_id)
    )
    return {int(h): int(n) for h, n in rows if h is not None}


def alert_kinds_at(session: Session, commit_ids: Sequence[int]) -> dict[tuple[int, int], set[str]]:
    """(first bad commit id, hardware class id) -> kinds of the alerts raised there."""
    if not commit_ids:
        return {}
    rows = session.execute(
        select(Alert.first_bad_commit_id, Alert.hardware_class_id, Alert.kind)
        .where(Alert.first_bad_commit_id.in_(list(commit_ids)), Alert.hardware_class_id.is_not(None))
        .distinct()
    )
    out: dict[tuple[int, int], set[str]] = {}
    for c, h, kind in rows:
        if c is not None and h is not None:
            out.setdefault((int(c), int(h)), set()).add(str(kind))
    return out


def get_alert(session: Session, alert_id: int) -> Alert | None:
    return session.get(Alert, alert_id)


def annotations_for(
    session: Session, project_id: int, hardware_class_ids: Sequence[int]
) -> list[dict[str, Any]]:
    """Annotations of the project (or of no project) on these hardware classes or on none,
    with the commit they mark."""
    rows = session.execute(
        select(
            Annotation.id,
            Annotation.kind,
            Annotation.text,
            Annotation.hardware_class_id,
            Annotation.commit_id,
            Commit.sha,
            Commit.order_key,
        )
        .join(Commit, Commit.id == Annotation.commit_id)
        .where(
            or_(Annotation.project_id == project_id, Annotation.project_id.is_(None)),
            or_(
                Annotation.hardware_class_id.in_(list(hardware_class_ids)),
                Annotation.hardware_class_id.is_(None),
            ),
        )
        .order_by(Commit.order_key, Annotation.id)
    )
    return [dict(r._mapping) for r in rows]
