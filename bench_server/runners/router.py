"""`/api/v1/runners`: register (scope `register`), heartbeat (runner), list (public)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from bench_server.auth.deps import RegisterAuth, RunnerAuth
from bench_server.jobs.deps import runner_id_of
from bench_server.kit.deps import AppDatabase, AppSettings, DbSession
from bench_server.kit.paging import Page, listing_response
from bench_server.models import Runner
from bench_server.models.base import utcnow
from bench_server.runners import repository as repo
from bench_server.runners import service
from bench_server.runners.schemas import HeartbeatIn, HeartbeatOut, RegisterIn, RegisterOut

router = APIRouter(tags=["runners"])

RUNNER_COLUMNS = [
    "id",
    "name",
    "hardware_class",
    "labels",
    "status",
    "last_heartbeat_at",
    "current_job_id",
    "machine_id",
    "created_at",
]


@router.post("/runners/register", status_code=201, response_model=RegisterOut)
def register_runner(body: RegisterIn, session: DbSession, _: RegisterAuth) -> RegisterOut:
    """Exchange a registration token for a runner token (shown once). Re-registering a name
    revokes that runner's earlier tokens."""
    runner, token = service.register(session, body)
    return RegisterOut(runner_id=runner.id, token=token.token, hardware_class=body.hardware_class)


@router.post("/runners/heartbeat", response_model=HeartbeatOut)
def heartbeat(body: HeartbeatIn, session: DbSession, principal: RunnerAuth) -> HeartbeatOut:
    return HeartbeatOut(status=service.heartbeat(session, runner_id_of(principal)))


@router.get("/runners")
def list_runners(
    request: Request,
    db: AppDatabase,
    settings: AppSettings,
    page: Page,
    status: str | None = Query(None, description="stored status: online, offline or disabled"),
    hardware_class: str | None = None,
) -> Any:
    now = utcnow()
    return listing_response(
        request,
        db,
        repo.runners_listing(status=status, hardware_class=hardware_class),
        Runner.id,
        RUNNER_COLUMNS,
        page,
        name="runners",
        to_row=lambda r: service.runner_row(settings, r, now),
    )
