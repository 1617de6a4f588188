"""SQL for runners."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, or_, select, update
from sqlalchemy.orm import Session

from bench_server.models import ApiToken, HardwareClass, Job, Runner
from bench_server.models.base import utcnow
from bench_server.models.jobs import HELD_JOB_STATES


def runner_by_name(session: Session, name: str) -> Runner | None:
    return session.scalars(select(Runner).where(Runner.name == name).with_for_update()).one_or_none()


def revoke_runner_tokens(session: Session, runner_id: int) -> None:
    session.execute(
        update(ApiToken)
        .where(ApiToken.runner_id == runner_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def mark_silent_offline(session: Session, silent_since: datetime) -> list[int]:
    ids = list(
        session.scalars(
            select(Runner.id).where(
                Runner.status == "online",
                or_(Runner.last_heartbeat_at < silent_since, Runner.last_heartbeat_at.is_(None)),
                Runner.created_at < silent_since,
            )
        )
    )
    if ids:
        session.execute(
            update(Runner)
            .where(Runner.id.in_(ids), Runner.status == "online")
            .values(status="offline")
            .execution_options(synchronize_session=False)
        )
    return ids


def runners_listing(*, status: str | None = None, hardware_class: str | None = None) -> Select[Any]:
    current_job = (
        select(Job.id)
        .where(Job.runner_id == Runner.id, Job.state.in_(HELD_JOB_STATES))
        .order_by(Job.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    query = select(
        Runner.id,
        Runner.name,
        HardwareClass.name.label("hardware_class"),
        Runner.labels,
        Runner.status,
        Runner.last_heartbeat_at,
        Runner.machine_id,
        Runner.created_at,
        current_job.label("current_job_id"),
    ).join(HardwareClass, HardwareClass.id == Runner.hardware_class_id)
    if status:
        query = query.where(Runner.status == status)
    if hardware_class:
        query = query.where(HardwareClass.name == hardware_class)
    return query
