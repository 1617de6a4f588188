"""`/api/v1/runs` (triggers and their status) and `/api/v1/projects/{slug}/suites`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from bench_server.auth.deps import AdminAuth, CiAuth
from bench_server.kit.deps import AppCtx, DbSession, ReadSession
from bench_server.kit.openapi import error_responses
from bench_server.kit.params import SHA_PREFIX_PATTERN, PathId
from bench_server.runs import service
from bench_server.runs.schemas import RunIn, RunOut, SuitesIn

router = APIRouter(tags=["runs"])


@router.post("/runs", status_code=202, response_model=RunOut)
def trigger_run(body: RunIn, session: DbSession, ctx: AppCtx, _: CiAuth) -> RunOut:
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


@router.get("/runs/{run_id}", responses=error_responses(404))
def get_run(run_id: PathId, session: ReadSession) -> Any:
    """A run with its jobs; `done` once it has fanned out and no job is queued, claimed or running."""
    return JSONResponse(jsonable_encoder(service.run_status(session, run_id)))


@router.get("/runs", responses=error_responses(404))
def find_run(
    session: ReadSession,
    project: str,
    sha: Annotated[str, Query(pattern=SHA_PREFIX_PATTERN, description="a commit sha or a prefix of it")],
) -> Any:
    """The newest run for a commit."""
    return JSONResponse(jsonable_encoder(service.latest_run_status(session, project, sha)))


@router.put("/projects/{slug}/suites")
def set_project_suites(slug: str, body: SuitesIn, session: DbSession, _: AdminAuth) -> dict[str, Any]:
    """The suites a trigger runs when it names none (default `["default"]`)."""
    return {"project": slug, "suites": service.set_project_suites(session, slug, body.suites)}
