"""SQL for runners."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, aliased

from bench_server.kit.paging import Listing
from bench_server.models import Commit, HardwareClass, Job, Machine, Project, Runner
from bench_server.models.jobs import HELD_JOB_STATES

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


def runner_by_name(session: Session, name: str) -> Runner | None:
    return session.scalars(select(Runner).where(Runner.name == name).with_for_update()).one_or_none()


def get_runner(session: Session, runner_id: int) -> Runner | None:
    return session.get(Runner, runner_id)


def save_runner(session: Session, runner: Runner) -> None:
    """INSERT a new runner (or flush a loaded one's changes); its id is known afterwards."""
    session.add(runner)
    session.flush()


def hardware_class_ids_with_runners(session: Session) -> list[int]:
    """Hardware classes with at least one registered runner that is not disabled."""
    return list(
        session.scalars(
            select(Runner.hardware_class_id)
            .where(Runner.status != "disabled")
            .distinct()
            .order_by(Runner.hardware_class_id)
        )
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


def count_by_status(session: Session) -> dict[str, int]:
    return {
        s: int(n) for s, n in session.execute(select(Runner.status, func.count()).group_by(Runner.status))
    }


def _current_job_id() -> Any:
    """The newest job a runner holds (claimed or running), as a correlated subquery."""
    return (
        select(Job.id)
        .where(Job.runner_id == Runner.id, Job.state.in_(HELD_JOB_STATES))
        .order_by(Job.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def runners_listing(status: str | None, hardware_class: str | None) -> Listing:
    current_job = _current_job_id()
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
    return Listing("runners", query, Runner.id, RUNNER_COLUMNS, lambda r: dict(r._mapping))


def runners_with_machines(session: Session) -> list[dict[str, Any]]:
    """Every runner with its class, its machine's fingerprint and hostname, and the job it
    holds (claimed or running), by name."""
    current = _current_job_id()
    held = aliased(Job)
    query = (
        select(
            Runner.id,
            Runner.name,
            HardwareClass.name.label("hardware_class"),
            Runner.labels,
            Runner.status,
            Runner.last_heartbeat_at,
            Machine.fingerprint,
            Machine.fingerprint_hash,
            Machine.hostname,
            held.id.label("current_job_id"),
            held.suite.label("current_suite"),
            held.state.label("current_state"),
            Commit.sha.label("current_sha"),
            Project.slug.label("current_project"),
        )
        .join(HardwareClass, HardwareClass.id == Runner.hardware_class_id)
        .outerjoin(Machine, Machine.id == Runner.machine_id)
        .outerjoin(held, held.id == current)
        .outerjoin(Commit, Commit.id == held.commit_id)
        .outerjoin(Project, Project.id == held.project_id)
        .order_by(Runner.name)
    )
    return [dict(r._mapping) for r in session.execute(query)]
