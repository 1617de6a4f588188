"""`/api/v1/runs` (triggers) and `/api/v1/jobs` (claim, lease, start, log, finish, release,
cancel, listing). The runner side follows docs/api-contract.md."""

from __future__ import annotations

import threading
import time
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from bench_server.auth.deps import AdminAuth, CiAuth, RunnerAuth
from bench_server.catalog.repository import project_by_slug
from bench_server.jobs import repository as repo
from bench_server.jobs import service
from bench_server.jobs.bell import bell
from bench_server.jobs.deps import Tasks, runner_id_of
from bench_server.jobs.schemas import CancelIn, FinishIn, LeaseOut, RunIn, RunOut, SuitesIn
from bench_server.kit.deps import AppDatabase, AppSettings, DbSession
from bench_server.kit.errors import InvalidInput, NotFound
from bench_server.kit.paging import Page, listing_response
from bench_server.models import Job
from bench_server.tasks import TaskContext, is_embedded

router = APIRouter(tags=["jobs"])

JOB_COLUMNS = [
    "id",
    "run_id",
    "project",
    "sha",
    "branch",
    "suite",
    "hardware_class",
    "state",
    "priority",
    "attempt",
    "max_attempts",
    "runner",
    "lease_expires_at",
    "failure_class",
    "message",
    "forced",
    "created_at",
    "claimed_at",
    "started_at",
    "finished_at",
]


# --------------------------------------------------------------------------------------
# Triggers


@router.post("/runs", status_code=202, response_model=RunOut)
def trigger_run(body: RunIn, session: DbSession, ctx: Tasks, principal: CiAuth) -> RunOut:
    """Benchmark a commit: records it and a run; the jobs are created by the `runs.fan_out` task."""
    commit = body.commit.model_dump(exclude_none=True) if body.commit else {}
    run = service.create_run(
        session,
        ctx,
        service.Trigger(
            project=body.project,
            sha=body.sha,
            ref=body.ref,
            branch=body.branch,
            suites=body.suites,
            hardware_classes=body.hardware_classes,
            force=body.force,
            source="api",
            pull_request=body.pull_request,
            priority=body.priority,
            commit=commit,
        ),
    )
    return RunOut(
        run_id=run.id, project=body.project, sha=body.sha.lower(), status_url=f"/api/v1/runs/{run.id}"
    )


@router.get("/runs/{run_id}")
def get_run(run_id: int, db: AppDatabase) -> Any:
    """A run with its jobs; `done` once it has fanned out and no job is queued, claimed or running."""
    with db.read_only() as session:
        return JSONResponse(jsonable_encoder(service.run_status(session, run_id)))


@router.get("/runs")
def find_run(db: AppDatabase, project: str, sha: str) -> Any:
    """The newest run for a commit."""
    with db.read_only() as session:
        run_id = service.latest_run_for(session, project, sha)
        if run_id is None:
            raise NotFound(f"no run for {sha!r} in project {project!r}")
        return JSONResponse(jsonable_encoder(service.run_status(session, run_id)))


@router.put("/projects/{slug}/suites")
def set_project_suites(slug: str, body: SuitesIn, session: DbSession, _: AdminAuth) -> dict[str, Any]:
    """The suites a trigger runs when it names none (default `["default"]`)."""
    bad = [s for s in body.suites if not service.SUITE_NAME.match(s)]
    if bad:
        raise InvalidInput("suites", f"not suite names: {', '.join(map(repr, bad))}")
    project = project_by_slug(session, slug)
    project.suites = sorted(set(body.suites))
    return {"project": slug, "suites": project.suites}


# --------------------------------------------------------------------------------------
# Runner side


_reap_lock = threading.Lock()
_last_reap = 0.0


def _maybe_reap(ctx: TaskContext) -> None:
    """Embedded mode has no beat: claims run the lease reaper at most every reaper_interval_s."""
    global _last_reap
    if not is_embedded(ctx.settings):
        return
    with _reap_lock:
        if time.monotonic() - _last_reap < ctx.settings.reaper_interval_s:
            return
        _last_reap = time.monotonic()
    from bench_server.jobs.tasks import reap_expired

    reap_expired(ctx)


def _claim_once(ctx: TaskContext, runner_id: int) -> dict[str, Any] | None:
    _maybe_reap(ctx)
    with ctx.db.transaction() as session:
        return service.claim_next(session, ctx.settings, runner_id)


def _touch(ctx: TaskContext, runner_id: int) -> None:
    with ctx.db.transaction() as session:
        service.touch_runner(session, runner_id)


@router.post(
    "/jobs/claim",
    responses={
        200: {"description": "a job, now leased to this runner"},
        204: {"description": "no job within wait"},
    },
)
async def claim_job(
    request: Request,
    ctx: Tasks,
    principal: RunnerAuth,
    wait: float = Query(30.0, ge=0, description="seconds to hold the request open waiting for a job"),
) -> Response:
    """Long-poll: a job of this runner's hardware class (best priority, oldest first), or 204.

    No transaction stays open while waiting: each look at the queue is its own short transaction."""
    runner_id = runner_id_of(principal)
    await run_in_threadpool(_touch, ctx, runner_id)
    deadline = time.monotonic() + min(wait, ctx.settings.claim_max_wait_s)
    while True:
        if await request.is_disconnected():
            return Response(status_code=204)
        job = await run_in_threadpool(_claim_once, ctx, runner_id)
        if job is not None:
            return JSONResponse(jsonable_encoder(job))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return Response(status_code=204)
        await bell.wait(min(remaining, ctx.settings.claim_poll_interval_s))


@router.post("/jobs/{job_id}/lease", response_model=LeaseOut)
def renew_lease(job_id: int, session: DbSession, settings: AppSettings, principal: RunnerAuth) -> LeaseOut:
    """Extend the lease (holder only); 409 if it was lost or the job was cancelled."""
    job = service.renew_lease(session, settings, job_id, runner_id_of(principal))
    return LeaseOut(id=job.id, state=job.state, lease_expires_at=job.lease_expires_at)


@router.post("/jobs/{job_id}/start", response_model=LeaseOut)
def start_job(job_id: int, session: DbSession, ctx: Tasks, principal: RunnerAuth) -> LeaseOut:
    job = service.start_job(session, ctx, job_id, runner_id_of(principal))
    return LeaseOut(id=job.id, state=job.state, lease_expires_at=job.lease_expires_at)


@router.put("/jobs/{job_id}/log")
async def put_log(job_id: int, request: Request, ctx: Tasks, principal: RunnerAuth) -> dict[str, Any]:
    """The job's log as plain text; the server keeps its last job_log_max_bytes."""
    runner_id = runner_id_of(principal)
    text = (await request.body()).decode("utf-8", errors="replace")

    def store() -> int:
        with ctx.db.transaction() as session:
            return service.store_log(session, ctx.settings, job_id, runner_id, text)

    return {"id": job_id, "stored_bytes": await run_in_threadpool(store)}


@router.post("/jobs/{job_id}/finish", response_model=LeaseOut)
def finish_job(
    job_id: int, body: FinishIn, session: DbSession, ctx: Tasks, principal: RunnerAuth
) -> LeaseOut:
    job = service.finish_job(
        session, ctx, job_id, runner_id_of(principal), body.state, body.failure_class, body.message
    )
    return LeaseOut(id=job.id, state=job.state, lease_expires_at=job.lease_expires_at)


@router.post("/jobs/{job_id}/release", response_model=LeaseOut)
def release_job(job_id: int, ctx: Tasks, principal: RunnerAuth) -> LeaseOut:
    """Give the job back to the queue (a runner shutting down)."""
    with ctx.db.transaction() as session:
        job = service.release_job(session, job_id, runner_id_of(principal))
        out = LeaseOut(id=job.id, state=job.state, lease_expires_at=job.lease_expires_at)
    bell.ring(1)
    return out


@router.post("/jobs/{job_id}/cancel", response_model=LeaseOut)
def cancel_job(
    job_id: int, session: DbSession, ctx: Tasks, _: CiAuth, body: CancelIn | None = None
) -> LeaseOut:
    """Cancel a queued, claimed or running job (ci or admin). The runner learns it at its next
    lease renewal (409) and stops."""
    job = service.cancel_job(session, ctx, job_id, body.reason if body else None)
    return LeaseOut(id=job.id, state=job.state, lease_expires_at=job.lease_expires_at)


# --------------------------------------------------------------------------------------
# Reads


@router.get("/jobs")
def list_jobs(
    request: Request,
    db: AppDatabase,
    settings: AppSettings,
    page: Page,
    state: str | None = Query(None, description="one state or several, comma-separated"),
    project: str | None = None,
    sha: str | None = Query(None, description="a commit sha or its prefix"),
    suite: str | None = None,
    hardware_class: str | None = None,
    runner: str | None = None,
    run_id: int | None = None,
) -> Any:
    query = repo.jobs_listing(
        state=state,
        project=project,
        sha=sha,
        suite=suite,
        hardware_class=hardware_class,
        runner=runner,
        run_id=run_id,
    )
    return listing_response(
        request,
        db,
        query,
        Job.id,
        JOB_COLUMNS,
        page,
        name="jobs",
        to_row=lambda r: dict(r._mapping),
    )


@router.get("/jobs/{job_id}")
def get_job(job_id: int, db: AppDatabase) -> Any:
    with db.read_only() as session:
        return JSONResponse(jsonable_encoder(service.get_job(session, job_id)))
