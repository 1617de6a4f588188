"""SQL for jobs. Claims and the reaper are written to be safe with many API processes:
row locks with SKIP LOCKED on PostgreSQL, and conditional UPDATEs (`WHERE state = ...`) that
also make SQLite's single writer safe."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bench_server.jobs.schemas import JobFilters
from bench_server.kit.paging import Listing
from bench_server.models import Commit, Failure, HardwareClass, IngestBatch, Job, Project, Runner
from bench_server.models.jobs import ACTIVE_JOB_STATES, ACTIVE_UNFORCED, HELD_JOB_STATES

# A commit x suite x hardware class with one of these jobs is not queued again unless forced.
NOT_AGAIN_STATES = (*ACTIVE_JOB_STATES, "succeeded")


def existing_identities(session: Session, project_id: int, commit_id: int) -> set[tuple[str, int]]:
    rows = session.execute(
        select(Job.suite, Job.hardware_class_id).where(
            Job.project_id == project_id, Job.commit_id == commit_id, Job.state.in_(NOT_AGAIN_STATES)
        )
    )
    return {(suite, hw) for suite, hw in rows}


def insert_job(session: Session, values: dict[str, Any]) -> int | None:
    """INSERT a job; an unforced job that collides with an active one is skipped (returns None)."""
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    stmt = module.insert(Job.__table__).values(**values)
    if not values.get("forced"):
        stmt = stmt.on_conflict_do_nothing(
            index_elements=["project_id", "commit_id", "suite", "hardware_class_id"],
            index_where=ACTIVE_UNFORCED,  # the partial index's own predicate, so PostgreSQL infers it
        )
    new_id = session.execute(stmt.returning(Job.__table__.c.id)).scalar_one_or_none()
    return int(new_id) if new_id is not None else None


def next_queued_job_id(session: Session, hardware_class_id: int) -> int | None:
    """The best queued job of a class, locked; other claimers skip it (PostgreSQL)."""
    return session.scalars(
        select(Job.id)
        .where(Job.state == "queued", Job.hardware_class_id == hardware_class_id)
        .order_by(Job.priority, Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()


def mark_claimed(session: Session, job_id: int, runner_id: int, now: datetime, lease_until: datetime) -> bool:
    """queued -> claimed, only if it is still queued (a lost race updates nothing)."""
    result: Any = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == "queued")
        .values(
            state="claimed",
            runner_id=runner_id,
            attempt=Job.attempt + 1,
            lease_expires_at=lease_until,
            claimed_at=now,
            started_at=None,
            finished_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)


def held_job(session: Session, job_id: int, runner_id: int) -> Job | None:
    """The job if this runner holds it (claimed or running), locked for the update that follows."""
    return session.scalars(
        select(Job)
        .where(Job.id == job_id, Job.runner_id == runner_id, Job.state.in_(HELD_JOB_STATES))
        .with_for_update()
    ).one_or_none()


def get_job(session: Session, job_id: int) -> Job | None:
    return session.get(Job, job_id)


def claimed_job(session: Session, job_id: int) -> tuple[Job, Project, Commit, HardwareClass]:
    """A job this transaction just claimed, its UPDATE loaded, with what a runner needs to know."""
    job, project, commit, hw = job_context(session, [job_id])[job_id]
    session.refresh(job)
    return job, project, commit, hw


def lock_job(session: Session, job_id: int) -> Job | None:
    return session.scalars(select(Job).where(Job.id == job_id).with_for_update()).one_or_none()


def expired_leases(session: Session, now: datetime, limit: int = 500) -> Sequence[Job]:
    return session.scalars(
        select(Job)
        .where(Job.state.in_(HELD_JOB_STATES), Job.lease_expires_at < now)
        .order_by(Job.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def delivered_batches(session: Session, job_id: int, since: datetime | None) -> list[tuple[int, int]]:
    """(results, failures) of each batch posted for this job since it was claimed."""
    query = select(IngestBatch.n_results, IngestBatch.n_failures).where(IngestBatch.job_id == job_id)
    if since is not None:
        query = query.where(IngestBatch.created_at >= since)
    return [(int(r), int(f)) for r, f in session.execute(query)]


def overdue_jobs(session: Session, started_before: datetime, limit: int = 500) -> Sequence[Job]:
    return session.scalars(
        select(Job)
        .where(Job.state == "running", Job.started_at < started_before)
        .order_by(Job.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()


def job_context(
    session: Session, job_ids: Sequence[int]
) -> dict[int, tuple[Job, Project, Commit, HardwareClass]]:
    rows = session.execute(
        select(Job, Project, Commit, HardwareClass)
        .join(Project, Project.id == Job.project_id)
        .join(Commit, Commit.id == Job.commit_id)
        .join(HardwareClass, HardwareClass.id == Job.hardware_class_id)
        .where(Job.id.in_(list(job_ids)))
    )
    return {job.id: (job, project, commit, hw) for job, project, commit, hw in rows}


def run_jobs(session: Session, run_id: int) -> list[tuple[Job, str, str | None]]:
    rows = session.execute(
        select(Job, HardwareClass.name, Runner.name)
        .join(HardwareClass, HardwareClass.id == Job.hardware_class_id)
        .outerjoin(Runner, Runner.id == Job.runner_id)
        .where(Job.run_id == run_id)
        .order_by(Job.id)
    )
    return [(job, hw, runner) for job, hw, runner in rows]


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


def add_failure(session: Session, job: Job, failure_class: str, message: str) -> None:
    """A failure row for a job the server gave up on (its runner was lost, or it ran too long)."""
    session.add(
        Failure(
            project_id=job.project_id,
            commit_id=job.commit_id,
            branch=job.branch,
            hardware_class_id=job.hardware_class_id,
            job_id=job.id,
            suite=job.suite,
            failure_class=failure_class,
            message=message,
        )
    )


def jobs_listing(filters: JobFilters) -> Listing:
    query = (
        select(
            Job.id,
            Job.run_id,
            Project.slug.label("project"),
            Commit.sha,
            Job.branch,
            Job.suite,
            HardwareClass.name.label("hardware_class"),
            Job.state,
            Job.priority,
            Job.attempt,
            Job.max_attempts,
            Runner.name.label("runner"),
            Job.lease_expires_at,
            Job.failure_class,
            Job.message,
            Job.forced,
            Job.created_at,
            Job.claimed_at,
            Job.started_at,
            Job.finished_at,
        )
        .join(Project, Project.id == Job.project_id)
        .join(Commit, Commit.id == Job.commit_id)
        .join(HardwareClass, HardwareClass.id == Job.hardware_class_id)
        .outerjoin(Runner, Runner.id == Job.runner_id)
    )
    if filters.states:
        query = query.where(Job.state.in_(filters.states))
    if filters.project:
        query = query.where(Project.slug == filters.project)
    if filters.sha:
        query = query.where(Commit.sha.startswith(filters.sha.lower()))
    if filters.suite:
        query = query.where(Job.suite == filters.suite)
    if filters.hardware_class:
        query = query.where(HardwareClass.name == filters.hardware_class)
    if filters.runner:
        query = query.where(Runner.name == filters.runner)
    if filters.run_id is not None:
        query = query.where(Job.run_id == filters.run_id)
    return Listing("jobs", query, Job.id, JOB_COLUMNS, lambda r: dict(r._mapping))


def count_by_state(session: Session) -> dict[str, int]:
    return {s: int(n) for s, n in session.execute(select(Job.state, func.count()).group_by(Job.state))}


def jobs_rows(
    session: Session, filters: JobFilters, *, oldest_first: bool, limit: int
) -> list[dict[str, Any]]:
    """The jobs listing's rows (JOB_COLUMNS), for a page: the queue oldest and best priority
    first, or the newest jobs first."""
    query = jobs_listing(filters).query
    order = (Job.priority, Job.id) if oldest_first else (Job.id.desc(),)
    return [dict(r._mapping) for r in session.execute(query.order_by(*order).limit(limit))]
