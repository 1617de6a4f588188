"""SQL for ingest batches, results and failures: the batch lookup, the bulk writes and the
listings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, insert, select
from sqlalchemy.orm import Session

from bench_server.kit.paging import Listing
from bench_server.kit.sql import bulk_insert
from bench_server.models import (
    Benchmark,
    Commit,
    Failure,
    HardwareClass,
    IngestBatch,
    Job,
    Machine,
    Metric,
    Project,
    Result,
)
from bench_server.models.results import LEGACY_KEY_SCOPE
from bench_server.results.schemas import RowFilters

# The batch's columns first, then each result's own.
RESULT_INSERT_COLUMNS = (
    "batch_id", "project_id", "commit_id", "branch", "machine_id", "hardware_class_id", "job_id",
    "created_at", "benchmark_id", "metric_id", "value", "samples", "stats",
)  # fmt: skip

RESULT_COLUMNS = [
    "id",
    "project",
    "commit",
    "branch",
    "suite",
    "benchmark",
    "params",
    "metric",
    "unit",
    "direction",
    "value",
    "hardware_class",
    "machine",
    "job_id",
    "batch_id",
    "created_at",
    "stats",
    "samples",
]
FAILURE_COLUMNS = [
    "id",
    "project",
    "commit",
    "branch",
    "suite",
    "benchmark",
    "params",
    "hardware_class",
    "failure_class",
    "message",
    "job_id",
    "batch_id",
    "created_at",
]


def batch_by_key(session: Session, key_scope: str, idempotency_key: str) -> IngestBatch | None:
    """The batch this poster stored under the key, or a batch stored before keys were scoped."""
    return session.scalars(
        select(IngestBatch)
        .where(
            IngestBatch.idempotency_key == idempotency_key,
            IngestBatch.key_scope.in_([key_scope, LEGACY_KEY_SCOPE]),
        )
        .order_by(IngestBatch.id)
        .limit(1)
    ).one_or_none()


def get_job(session: Session, job_id: int) -> Job | None:
    return session.get(Job, job_id)


def add_batch(session: Session, batch: IngestBatch) -> None:
    """INSERT the batch in a savepoint: a concurrent twin with the same key fails here (an
    IntegrityError), before any result is written, and the transaction goes on."""
    with session.begin_nested():
        session.add(batch)
        session.flush()


def insert_results(session: Session, rows: Sequence[Sequence[Any]]) -> None:
    """Rows are tuples in RESULT_INSERT_COLUMNS order."""
    bulk_insert(
        session,
        Result.__table__,  # type: ignore[arg-type]
        RESULT_INSERT_COLUMNS,
        rows,
        json_columns=("samples", "stats"),
    )


def insert_failures(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(Failure), rows)


def _filtered(query: Select[Any], filters: RowFilters, model: Any) -> Select[Any]:
    if filters.project:
        query = query.where(Project.slug == filters.project)
    if filters.branch:
        query = query.where(model.branch == filters.branch)
    if filters.commit:
        query = query.where(Commit.sha.startswith(filters.commit.lower(), autoescape=True))
    if filters.suite:
        suite_column = model.suite if model is Failure else Benchmark.suite
        query = query.where(suite_column == filters.suite)
    if filters.benchmark:
        query = query.where(Benchmark.name == filters.benchmark)
    if filters.hardware_class:
        query = query.where(HardwareClass.name == filters.hardware_class)
    if filters.since:
        query = query.where(model.created_at >= filters.since)
    if filters.until:
        query = query.where(model.created_at < filters.until)
    return query


def results_listing(filters: RowFilters, metric: str | None, samples: bool) -> Listing:
    query = (
        select(
            Result.id,
            Project.slug,
            Commit.sha,
            Result.branch,
            Benchmark.suite,
            Benchmark.name,
            Benchmark.params,
            Metric.name,
            Metric.unit,
            Metric.direction,
            Result.value,
            HardwareClass.name,
            Machine.fingerprint_hash,
            Result.job_id,
            Result.batch_id,
            Result.created_at,
            Result.stats,
            Result.samples if samples else Result.id.label("no_samples"),
        )
        .join(Project, Project.id == Result.project_id)
        .join(Commit, Commit.id == Result.commit_id)
        .join(Benchmark, Benchmark.id == Result.benchmark_id)
        .join(Metric, Metric.id == Result.metric_id)
        .join(HardwareClass, HardwareClass.id == Result.hardware_class_id)
        .join(Machine, Machine.id == Result.machine_id)
    )
    query = _filtered(query, filters, Result)
    if metric:
        query = query.where(Metric.name == metric)

    def to_row(r: Any) -> dict[str, Any]:
        row = dict(zip(RESULT_COLUMNS, r, strict=True))
        row["machine"] = row["machine"][:16]
        if not samples:
            row.pop("samples")
        return row

    columns = RESULT_COLUMNS if samples else RESULT_COLUMNS[:-1]
    return Listing("results", query, Result.id, columns, to_row)


def failures_listing(filters: RowFilters, failure_class: str | None) -> Listing:
    query = (
        select(
            Failure.id,
            Project.slug,
            Commit.sha,
            Failure.branch,
            Failure.suite,
            Benchmark.name,
            Benchmark.params,
            HardwareClass.name,
            Failure.failure_class,
            Failure.message,
            Failure.job_id,
            Failure.batch_id,
            Failure.created_at,
        )
        .join(Project, Project.id == Failure.project_id)
        .join(Commit, Commit.id == Failure.commit_id)
        .outerjoin(Benchmark, Benchmark.id == Failure.benchmark_id)
        .join(HardwareClass, HardwareClass.id == Failure.hardware_class_id)
    )
    query = _filtered(query, filters, Failure)
    if failure_class:
        query = query.where(Failure.failure_class == failure_class)
    return Listing("failures", query, Failure.id, FAILURE_COLUMNS)
