"""`/api/v1/results` and `/api/v1/failures`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import Select, select

from bench_server.auth.deps import IngestAuth
from bench_server.kit.deps import AppDatabase, DbSession
from bench_server.kit.paging import Page, listing_response
from bench_server.models import Benchmark, Commit, Failure, HardwareClass, Machine, Metric, Project, Result
from bench_server.results.schemas import IngestIn, IngestOut
from bench_server.results.service import ingest

router = APIRouter(tags=["results"])

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


@router.post(
    "/results",
    status_code=201,
    response_model=IngestOut,
    responses={
        200: {"model": IngestOut, "description": "The same idempotency key and body were seen before"}
    },
)
def post_results(payload: IngestIn, session: DbSession, _: IngestAuth, response: Response) -> IngestOut:
    """Store a batch of results and failures for one commit on one machine, all or nothing."""
    outcome = ingest(session, payload)
    if outcome.duplicate:
        response.status_code = 200
    return IngestOut(
        batch_id=outcome.batch_id,
        duplicate=outcome.duplicate,
        results=outcome.results,
        failures=outcome.failures,
    )


@dataclass(frozen=True)
class RowFilters:
    """The filters the results and failures listings share."""

    project: str | None
    branch: str | None
    commit: str | None
    suite: str | None
    benchmark: str | None
    hardware_class: str | None
    since: datetime | None
    until: datetime | None

    def apply(self, query: Select[Any], model: Any) -> Select[Any]:
        if self.project:
            query = query.where(Project.slug == self.project)
        if self.branch:
            query = query.where(model.branch == self.branch)
        if self.commit:
            query = query.where(Commit.sha.startswith(self.commit.lower()))
        if self.suite:
            suite_column = model.suite if model is Failure else Benchmark.suite
            query = query.where(suite_column == self.suite)
        if self.benchmark:
            query = query.where(Benchmark.name == self.benchmark)
        if self.hardware_class:
            query = query.where(HardwareClass.name == self.hardware_class)
        if self.since:
            query = query.where(model.created_at >= self.since)
        if self.until:
            query = query.where(model.created_at < self.until)
        return query


def row_filters(
    project: str | None = None,
    branch: str | None = None,
    commit: Annotated[str | None, Query(description="commit sha or a prefix of it")] = None,
    suite: str | None = None,
    benchmark: str | None = None,
    hardware_class: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> RowFilters:
    return RowFilters(project, branch, commit, suite, benchmark, hardware_class, since, until)


Filters = Annotated[RowFilters, Depends(row_filters)]


@router.get("/results")
def list_results(
    request: Request,
    db: AppDatabase,
    page: Page,
    filters: Filters,
    metric: str | None = None,
    samples: bool = Query(False, description="include raw samples"),
) -> Any:
    """Results, newest first, with filters and cursor paging; `?format=csv` exports."""
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
    query = filters.apply(query, Result)
    if metric:
        query = query.where(Metric.name == metric)

    def to_row(r: Any) -> dict[str, Any]:
        row = dict(zip(RESULT_COLUMNS, r, strict=True))
        row["machine"] = row["machine"][:16]
        if not samples:
            row.pop("samples")
        return row

    columns = RESULT_COLUMNS if samples else RESULT_COLUMNS[:-1]
    return listing_response(request, db, query, Result.id, columns, page, name="results", to_row=to_row)


@router.get("/failures")
def list_failures(
    request: Request,
    db: AppDatabase,
    page: Page,
    filters: Filters,
    failure_class: str | None = None,
) -> Any:
    """Failures (benchmarks that produced no numbers), newest first."""
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
    query = filters.apply(query, Failure)
    if failure_class:
        query = query.where(Failure.failure_class == failure_class)
    return listing_response(
        request,
        db,
        query,
        Failure.id,
        FAILURE_COLUMNS,
        page,
        name="failures",
    )
