"""SQL for the GitHub side: projects by repository, webhook deliveries, and the commit statuses
GitHub acknowledged."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bench_server.models import GithubStatus, Job, Project, WebhookDelivery
from bench_server.models.jobs import REPORTED_JOB_STATES


def _dialect_module(session: Session) -> Any:
    return postgresql if session.get_bind().dialect.name == "postgresql" else sqlite


def project_for_repo(session: Session, full_name: str) -> Project | None:
    """The project whose github_repo is `owner/name` (GitHub names are case-insensitive)."""
    return session.scalars(
        select(Project)
        .where(func.lower(Project.github_repo) == full_name.lower())
        .order_by(Project.id)
        .limit(1)
    ).first()


def record_delivery(
    session: Session, delivery_id: str, event_key: str, event: str, action: str | None, now: datetime
) -> int | None:
    """Insert the delivery; None if its delivery id or its event key was seen before (a
    redelivery, a replayed body, or a concurrent twin)."""
    table = WebhookDelivery.__table__
    stmt = (
        _dialect_module(session)
        .insert(table)
        .values(delivery_id=delivery_id, event_key=event_key, event=event, action=action, created_at=now)
        # no conflict target: either unique constraint (delivery id, event key) makes it a no-op
        .on_conflict_do_nothing()
        .returning(table.c.id)
    )
    new_id = session.execute(stmt).scalar_one_or_none()
    return int(new_id) if new_id is not None else None


def link_delivery(session: Session, delivery_row_id: int, run_id: int) -> None:
    session.get_one(WebhookDelivery, delivery_row_id).run_id = run_id


def record_status(session: Session, job_id: int, job_state: str, http_status: int, now: datetime) -> None:
    """Remember the job state GitHub answered for (the newest answer wins)."""
    values = {"job_id": job_id, "job_state": job_state, "http_status": http_status, "reported_at": now}
    stmt = _dialect_module(session).insert(GithubStatus.__table__).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["job_id"],
        set_={"job_state": job_state, "http_status": http_status, "reported_at": now},
    )
    session.execute(stmt)


def unreported_job_ids(
    session: Session, changed_after: datetime, changed_before: datetime, limit: int
) -> list[int]:
    """Jobs of GitHub projects whose current, reported state GitHub has not acknowledged, that
    entered it between the two times."""
    changed_at = func.coalesce(Job.finished_at, Job.started_at)
    return list(
        session.scalars(
            select(Job.id)
            .join(Project, Project.id == Job.project_id)
            .outerjoin(GithubStatus, GithubStatus.job_id == Job.id)
            .where(
                Project.github_repo.is_not(None),
                Job.state.in_(REPORTED_JOB_STATES),
                or_(GithubStatus.job_id.is_(None), GithubStatus.job_state != Job.state),
                changed_at > changed_after,
                changed_at < changed_before,
            )
            .order_by(Job.id)
            .limit(limit)
        )
    )
