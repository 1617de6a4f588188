"""SQL for runs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bench_server.models import Commit, Project, Run


def add_run(session: Session, run: Run) -> None:
    session.add(run)
    session.flush()


def get_run(session: Session, run_id: int) -> Run | None:
    return session.get(Run, run_id)


def lock_run(session: Session, run_id: int) -> Run | None:
    return session.scalars(select(Run).where(Run.id == run_id).with_for_update()).one_or_none()


def subject_of(session: Session, run: Run) -> tuple[Project, Commit]:
    """The project and the commit a run benchmarks."""
    return session.get_one(Project, run.project_id), session.get_one(Commit, run.commit_id)


def latest_run_id(session: Session, project_id: int, sha: str) -> int | None:
    return session.scalars(
        select(Run.id)
        .join(Commit, Commit.id == Run.commit_id)
        .where(Run.project_id == project_id, Commit.sha.startswith(sha.lower()))
        .order_by(Run.id.desc())
        .limit(1)
    ).first()


def runs_not_fanned_out(session: Session, created_before: datetime, limit: int = 100) -> list[int]:
    return list(
        session.scalars(
            select(Run.id)
            .where(Run.fanned_out_at.is_(None), Run.created_at < created_before)
            .order_by(Run.id)
            .limit(limit)
        )
    )
