"""`/api/v1/jobs`: claim, lease, start, log, finish, release, cancel, and the job reads. The
runner side follows docs/api-contract.md."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from bench_server.auth.deps import CiAuth, RunnerId
from bench_server.jobs import service
from bench_server.jobs.bell import bell
from bench_server.jobs.schemas import CancelIn, FinishIn, JobFilters, LeaseOut
from bench_server.kit.db import end_transaction
from bench_server.kit.deps import AppCtx, AppSettings, DbSession, ReadSession
from bench_server.kit.openapi import error_responses
from bench_server.kit.paging import Page, listing_response
from bench_server.kit.params import PathId, QueryId, ShaPrefix
from bench_server.kit.settings import Settings
from bench_server.models import Job
from bench_server.runners import service as runners

router = APIRouter(tags=["jobs"])


def _lease(job: Job) -> LeaseOut:
    return LeaseOut(id=job.id, state=job.state, lease_expires_at=job.lease_expires_at)


def _look_for_a_job(session: Session, settings: Settings, runner_id: int) -> dict[str, Any] | None:
    # Each look at the queue is its own transaction, so the long-poll holds no connection while
    # it waits: the claim (or nothing) is committed before the next wait.
    job = service.claim_next(session, settings, runner_id)
    end_transaction(session)
    return job


@router.post(
    "/jobs/claim",
    responses={
        200: {"description": "a job, now leased to this runner"},
        204: {"description": "no job within wait"},
        **error_responses(404),
    },
)
async def claim_job(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    runner_id: RunnerId,
    wait: float = Query(30.0, ge=0, description="seconds to hold the request open waiting for a job"),
) -> Response:
    """Long-poll: a job of this runner's hardware class (best priority, oldest first), or 204."""
    await run_in_threadpool(runners.touch, session, runner_id)
    deadline = time.monotonic() + min(wait, settings.claim_max_wait_s)
    while True:
        if await request.is_disconnected():
            return Response(status_code=204)
        job = await run_in_threadpool(_look_for_a_job, session, settings, runner_id)
        if job is not None:
            return JSONResponse(jsonable_encoder(job))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return Response(status_code=204)
        await bell.wait(min(remaining, settings.claim_poll_interval_s))


@router.post("/jobs/{job_id}/lease", response_model=LeaseOut, responses=error_responses(404, 409))
def renew_lease(job_id: PathId, session: DbSession, settings: AppSettings, runner_id: RunnerId) -> LeaseOut:
    """Extend the lease (holder only); 409 if it was lost or the job was cancelled."""
    return _lease(service.renew_lease(session, settings, job_id, runner_id))


@router.post("/jobs/{job_id}/start", response_model=LeaseOut, responses=error_responses(404, 409))
def start_job(job_id: PathId, session: DbSession, ctx: AppCtx, runner_id: RunnerId) -> LeaseOut:
    return _lease(service.start_job(session, ctx, job_id, runner_id))


async def log_text(request: Request) -> str:
    return (await request.body()).decode("utf-8", errors="replace")


@router.put("/jobs/{job_id}/log", responses=error_responses(404, 409, 413))
def put_log(
    job_id: PathId,
    # The body is read before the session's first statement, so a slow upload holds no connection.
    text: Annotated[str, Depends(log_text)],
    session: DbSession,
    settings: AppSettings,
    runner_id: RunnerId,
) -> dict[str, Any]:
    """The job's log as plain text; the server keeps its last job_log_max_bytes."""
    return {"id": job_id, "stored_bytes": service.store_log(session, settings, job_id, runner_id, text)}


@router.post("/jobs/{job_id}/finish", response_model=LeaseOut, responses=error_responses(404, 409))
def finish_job(
    job_id: PathId, body: FinishIn, session: DbSession, ctx: AppCtx, runner_id: RunnerId
) -> LeaseOut:
    return _lease(
        service.finish_job(session, ctx, job_id, runner_id, body.state, body.failure_class, body.message)
    )


@router.post("/jobs/{job_id}/release", response_model=LeaseOut, responses=error_responses(404, 409))
def release_job(job_id: PathId, session: DbSession, runner_id: RunnerId) -> LeaseOut:
    """Give the job back to the queue (a runner shutting down)."""
    return _lease(service.release_job(session, job_id, runner_id))


@router.post("/jobs/{job_id}/cancel", response_model=LeaseOut, responses=error_responses(404, 409))
def cancel_job(
    job_id: PathId, session: DbSession, ctx: AppCtx, _: CiAuth, body: CancelIn | None = None
) -> LeaseOut:
    """Cancel a queued, claimed or running job (ci or admin). The runner learns it at its next
    lease renewal (409) and stops."""
    return _lease(service.cancel_job(session, ctx, job_id, body.reason if body else None))


def job_filters(
    state: Annotated[str | None, Query(description="one state or several, comma-separated")] = None,
    project: str | None = None,
    sha: ShaPrefix = None,
    suite: str | None = None,
    hardware_class: str | None = None,
    runner: str | None = None,
    run_id: QueryId = None,
) -> JobFilters:
    states = [s.strip() for s in state.split(",") if s.strip()] if state else None
    return JobFilters(states, project, sha, suite, hardware_class, runner, run_id)


@router.get("/jobs")
def list_jobs(
    request: Request, session: ReadSession, page: Page, filters: Annotated[JobFilters, Depends(job_filters)]
) -> Any:
    return listing_response(request, session, page, service.jobs_listing(filters))


@router.get("/jobs/{job_id}", responses=error_responses(404))
def get_job(job_id: PathId, session: ReadSession) -> Any:
    return JSONResponse(jsonable_encoder(service.get_job(session, job_id)))
