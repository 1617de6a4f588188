"""Runners: registration (a `register` token buys a runner token), heartbeats, their status and
the offline sweep."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from bench_server.auth import service as auth
from bench_server.auth.service import IssuedToken
from bench_server.catalog.repository import hardware_class_by_name, machine_for
from bench_server.kit.errors import NotFound
from bench_server.kit.paging import Listing
from bench_server.kit.settings import Settings
from bench_server.models import Runner
from bench_server.models.base import utcnow
from bench_server.runners import repository as repo
from bench_server.runners.schemas import RegisterIn


def register(session: Session, body: RegisterIn) -> tuple[Runner, IssuedToken]:
    """Create the runner, or re-register one of the same name (a reinstalled machine): its old
    tokens are revoked and it gets a new one. A disabled runner is enabled again by this, as
    `offline` until its first heartbeat or claim; any other runner is `online`."""
    hw = hardware_class_by_name(session, body.hardware_class)
    machine = machine_for(session, hw, body.fingerprint, body.hostname) if body.fingerprint else None
    runner = repo.runner_by_name(session, body.name)
    if runner is None:
        runner = Runner(name=body.name, status="online")
    else:
        auth.revoke_runner_tokens(session, runner.id)
        runner.status = "offline" if runner.status == "disabled" else "online"
    runner.hardware_class_id = hw.id
    runner.labels = sorted(set(body.labels))
    runner.machine_id = machine.id if machine else runner.machine_id
    runner.last_heartbeat_at = utcnow()
    repo.save_runner(session, runner)
    token = auth.create_token(session, f"runner:{runner.name}", ["runner"], runner_id=runner.id)
    return runner, token


def get_runner(session: Session, runner_id: int) -> Runner:
    runner = repo.get_runner(session, runner_id)
    if runner is None:
        raise NotFound(f"runner {runner_id} is not registered")
    return runner


def touch(session: Session, runner_id: int) -> Runner:
    """The runner is alive (a heartbeat or a claim): an offline runner is online again; a
    disabled one stays disabled."""
    runner = get_runner(session, runner_id)
    runner.last_heartbeat_at = utcnow()
    if runner.status == "offline":
        runner.status = "online"
    return runner


def heartbeat(session: Session, runner_id: int) -> str:
    return touch(session, runner_id).status


def hardware_classes_with_runners(session: Session) -> list[int]:
    return repo.hardware_class_ids_with_runners(session)


def effective_status(
    settings: Settings, status: str, last_heartbeat_at: datetime | None, now: datetime
) -> str:
    """What the beat's sweep will say: a silent runner is offline even before the sweep ran."""
    if status != "online":
        return status
    if last_heartbeat_at is None:
        return "offline"
    if last_heartbeat_at.tzinfo is None:  # SQLite hands back naive UTC
        last_heartbeat_at = last_heartbeat_at.replace(tzinfo=UTC)
    if now - last_heartbeat_at > timedelta(seconds=settings.runner_offline_after_s):
        return "offline"
    return "online"


def mark_offline(session: Session, settings: Settings) -> list[int]:
    return repo.mark_silent_offline(session, utcnow() - timedelta(seconds=settings.runner_offline_after_s))


def runners_listing(settings: Settings, status: str | None, hardware_class: str | None) -> Listing:
    """Runners with their effective status (see `effective_status`) and the job each holds."""
    now = utcnow()

    def to_row(row: Any) -> dict[str, Any]:
        data = dict(row._mapping)
        data["status"] = effective_status(settings, data["status"], data["last_heartbeat_at"], now)
        return data

    return replace(repo.runners_listing(status, hardware_class), to_row=to_row)


def runner_board(session: Session, settings: Settings) -> list[dict[str, Any]]:
    """Every runner with fingerprint, effective status (see `effective_status`), whether it is
    busy, its current job and last heartbeat."""
    now = utcnow()
    rows = repo.runners_with_machines(session)
    for row in rows:
        row["status"] = effective_status(settings, row["status"], row["last_heartbeat_at"], now)
        row["busy"] = row["status"] == "online" and row["current_job_id"] is not None
    return rows
