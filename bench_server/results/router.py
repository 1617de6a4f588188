"""`/api/v1/results` and `/api/v1/failures`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from bench_server.auth.deps import IngestAuth
from bench_server.kit.deps import AppCtx, DbSession, ReadSession
from bench_server.kit.openapi import error_responses
from bench_server.kit.paging import Page, listing_response
from bench_server.kit.params import IsoDatetime, ShaPrefix
from bench_server.results import service
from bench_server.results.schemas import IngestIn, IngestOut, Poster, RowFilters

router = APIRouter(tags=["results"])


@router.post(
    "/results",
    status_code=201,
    response_model=IngestOut,
    responses={
        200: {"model": IngestOut, "description": "The same idempotency key and body were seen before"},
        **error_responses(403, 409),
    },
)
def post_results(
    payload: IngestIn, session: DbSession, ctx: AppCtx, principal: IngestAuth, response: Response
) -> IngestOut:
    """Store a batch of results and failures for one commit on one machine, all or nothing.
    With `job_id`, only from the runner holding the job's lease."""
    outcome = service.ingest(session, ctx, payload, Poster.of(principal.name, principal.runner_id))
    if outcome.duplicate:
        response.status_code = 200
    return IngestOut(
        batch_id=outcome.batch_id,
        duplicate=outcome.duplicate,
        results=outcome.results,
        failures=outcome.failures,
    )


def row_filters(
    project: str | None = None,
    branch: str | None = None,
    commit: ShaPrefix = None,
    suite: str | None = None,
    benchmark: str | None = None,
    hardware_class: str | None = None,
    since: Annotated[IsoDatetime | None, Query(description="ISO 8601; from this time on")] = None,
    until: Annotated[IsoDatetime | None, Query(description="ISO 8601; before this time")] = None,
) -> RowFilters:
    return RowFilters(project, branch, commit, suite, benchmark, hardware_class, since, until)


Filters = Annotated[RowFilters, Depends(row_filters)]


@router.get("/results")
def list_results(
    request: Request,
    session: ReadSession,
    page: Page,
    filters: Filters,
    metric: str | None = None,
    samples: bool = Query(False, description="include raw samples"),
) -> Any:
    """Results, newest first, with filters and cursor paging; `?format=csv` exports."""
    return listing_response(request, session, page, service.results_listing(filters, metric, samples))


@router.get("/failures")
def list_failures(
    request: Request,
    session: ReadSession,
    page: Page,
    filters: Filters,
    failure_class: str | None = None,
) -> Any:
    """Failures (benchmarks that produced no numbers), newest first."""
    return listing_response(request, session, page, service.failures_listing(filters, failure_class))
