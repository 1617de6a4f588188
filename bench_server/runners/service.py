"""Registering runners (a `register` token buys a runner token), heartbeats and their status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from bench_server.auth.tokens import IssuedToken, create_token
from bench_server.catalog.repository import hardware_class_by_name, machine_for
from bench_server.jobs.service import touch_runner
from bench_server.kit.settings import Settings
from bench_server.models import Runner
from bench_server.models.base import utcnow
from bench_server.runners import repository as repo
from bench_server.runners.schemas import RegisterIn


def register(session: Session, body: RegisterIn) -> tuple[Runner, IssuedToken]:
    """Create the runner, or re-register one of the same name (a reinstalled machine): its old
    tokens are revoked and it gets a new one."""
    hw = hardware_class_by_name(session, body.hardware_class)
    machine = machine_for(session, hw, body.fingerprint, body.hostname) if body.fingerprint else None
    runner = repo.runner_by_name(session, body.name)
    if runner is None:
        runner = Runner(name=body.name, hardware_class_id=hw.id, labels=sorted(set(body.labels)))
        session.add(runner)
    else:
        repo.revoke_runner_tokens(session, runner.id)
        runner.hardware_class_id = hw.id
        runner.labels = sorted(set(body.labels))
        if runner.status == "disabled":
            runner.status = "offline"
    runner.machine_id = machine.id if machine else runner.machine_id
    runner.last_heartbeat_at = utcnow()
    runner.status = "online"
    session.flush()
    token = create_token(session, f"runner:{runner.name}", ["runner"], runner_id=runner.id)
    return runner, token


def heartbeat(session: Session, runner_id: int) -> str:
    runner = touch_runner(session, runner_id)
    return runner.status


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


def runner_row(settings: Settings, row: Any, now: datetime) -> dict[str, Any]:
    data = dict(row._mapping)
    data["status"] = effective_status(settings, data["status"], data["last_heartbeat_at"], now)
    return data
