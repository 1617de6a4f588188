"""Turning webhook deliveries into runs: `push` to a branch and `pull_request` opened,
synchronize or reopened. A delivery id is handled once (webhook_deliveries)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bench_server.jobs.service import Trigger, create_run
from bench_server.models import Project, WebhookDelivery
from bench_server.models.base import utcnow
from bench_server.tasks import TaskContext

ZERO_SHA = "0" * 40
PR_ACTIONS = ("opened", "synchronize", "reopened")


@dataclass(frozen=True)
class Outcome:
    status: str  # queued | duplicate | ignored
    detail: str
    run_id: int | None = None


def _project_for(session: Session, full_name: str | None) -> Project | None:
    if not full_name:
        return None
    return session.scalars(
        select(Project)
        .where(func.lower(Project.github_repo) == full_name.lower())
        .order_by(Project.id)
        .limit(1)
    ).first()


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _push_trigger(project: Project, payload: dict[str, Any]) -> Trigger | str:
    ref = str(payload.get("ref") or "")
    after = str(payload.get("after") or "")
    if payload.get("deleted") or after in ("", ZERO_SHA):
        return "a deleted ref has no commit to benchmark"
    if not ref.startswith("refs/heads/"):
        return f"{ref or 'this ref'} is not a branch"
    head = payload.get("head_commit") or {}
    commits = [c for c in payload.get("commits") or [] if isinstance(c, dict)]
    parents: list[str] = []
    if len(commits) >= 2 and commits[-1].get("id") == after:
        parents = [str(commits[-2]["id"])]
    elif len(commits) <= 1 and payload.get("before") not in (None, "", ZERO_SHA):
        parents = [str(payload["before"])]
    author = (head.get("author") or {}).get("name") if isinstance(head, dict) else None
    return Trigger(
        project=project.slug,
        sha=after,
        ref=ref,
        source="webhook",
        commit={
            "parents": parents,
            "author": author,
            "message": head.get("message") if isinstance(head, dict) else None,
            "committed_at": _timestamp(head.get("timestamp")) if isinstance(head, dict) else None,
        },
    )


def _pull_request_trigger(project: Project, payload: dict[str, Any]) -> Trigger | str:
    action = payload.get("action")
    if action not in PR_ACTIONS:
        return f"pull_request action {action!r} is not benchmarked"
    pr = payload.get("pull_request") or {}
    head = pr.get("head") or {}
    sha = head.get("sha")
    if not sha:
        return "pull_request without a head sha"
    number = pr.get("number") or payload.get("number")
    return Trigger(
        project=project.slug,
        sha=str(sha),
        ref=f"refs/pull/{number}/head",
        branch=head.get("ref"),
        source="webhook",
        pull_request=int(number) if number else None,
    )


def _record_delivery(session: Session, delivery_id: str, event: str, action: str | None) -> int | None:
    """Insert the delivery; None if it was seen before (a redelivery, or a concurrent twin)."""
    module: Any = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    table = WebhookDelivery.__table__
    stmt = (
        module.insert(table)
        .values(delivery_id=delivery_id, event=event, action=action, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["delivery_id"])
        .returning(table.c.id)
    )
    new_id = session.execute(stmt).scalar_one_or_none()
    return int(new_id) if new_id is not None else None


def handle_event(
    session: Session, ctx: TaskContext, event: str, delivery_id: str, payload: dict[str, Any]
) -> Outcome:
    project = _project_for(session, (payload.get("repository") or {}).get("full_name"))
    if project is None:
        return Outcome("ignored", "no project has this github_repo")
    trigger = _push_trigger(project, payload) if event == "push" else _pull_request_trigger(project, payload)
    if isinstance(trigger, str):
        return Outcome("ignored", trigger)
    delivery_row = _record_delivery(session, delivery_id, event, payload.get("action"))
    if delivery_row is None:
        return Outcome("duplicate", f"delivery {delivery_id} was already handled")
    run = create_run(session, ctx, trigger)
    delivery = session.get_one(WebhookDelivery, delivery_row)
    delivery.run_id = run.id
    return Outcome("queued", f"run {run.id} for {trigger.sha[:12]}", run.id)
