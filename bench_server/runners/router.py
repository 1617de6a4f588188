"""`/api/v1/runners`: register (scope `register`), heartbeat (runner), list (public)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from bench_server.auth.deps import RegisterAuth, RunnerId
from bench_server.kit.deps import AppSettings, DbSession, ReadSession
from bench_server.kit.paging import Page, listing_response
from bench_server.runners import service
from bench_server.runners.schemas import HeartbeatIn, HeartbeatOut, RegisterIn, RegisterOut

router = APIRouter(tags=["runners"])


@router.post("/runners/register", status_code=201, response_model=RegisterOut)
def register_runner(body: RegisterIn, session: DbSession, _: RegisterAuth) -> RegisterOut:
    """Exchange a registration token for a runner token (shown once). Re-registering a name
    revokes that runner's earlier tokens."""
    runner, token = service.register(session, body)
    return RegisterOut(runner_id=runner.id, token=token.token, hardware_class=body.hardware_class)


@router.post("/runners/heartbeat", response_model=HeartbeatOut)
def heartbeat(_: HeartbeatIn, session: DbSession, runner_id: RunnerId) -> HeartbeatOut:
    """The runner is alive (the body is checked, and holds nothing the server uses)."""
    return HeartbeatOut(status=service.heartbeat(session, runner_id))


@router.get("/runners")
def list_runners(
    request: Request,
    session: ReadSession,
    settings: AppSettings,
    page: Page,
    status: str | None = Query(None, description="stored status: online, offline or disabled"),
    hardware_class: str | None = None,
) -> Any:
    return listing_response(request, session, page, service.runners_listing(settings, status, hardware_class))
