"""GitHub: webhook deliveries become runs (`push` to a branch; `pull_request` opened, synchronize
or reopened; a delivery id is handled once), and jobs' states become commit statuses (posted by
`github.post_status`; those GitHub never acknowledged are found again for
`github.resend_statuses`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from bench_server.github import repository as repo
from bench_server.github.status import STATES, CommitStatus
from bench_server.jobs import repository as jobs_repo
from bench_server.kit.outbox import AppContext
from bench_server.kit.settings import Settings
from bench_server.models import Project
from bench_server.models.base import utcnow
from bench_server.runs.service import Trigger, create_run

ZERO_SHA = "0" * 40
PR_ACTIONS = ("opened", "synchronize", "reopened")
# A status still undelivered this long after its job changed is given up.
RESEND_HORIZON = timedelta(days=1)
RESEND_BATCH = 200


@dataclass(frozen=True)
class Outcome:
    status: str  # queued | duplicate | ignored
    detail: str
    run_id: int | None = None


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


def handle_event(
    session: Session, ctx: AppContext, event: str, delivery_id: str, payload: dict[str, Any]
) -> Outcome:
    full_name = (payload.get("repository") or {}).get("full_name")
    project = repo.project_for_repo(session, full_name) if full_name else None
    if project is None:
        return Outcome("ignored", "no project has this github_repo")
    trigger = _push_trigger(project, payload) if event == "push" else _pull_request_trigger(project, payload)
    if isinstance(trigger, str):
        return Outcome("ignored", trigger)
    delivery_row = repo.record_delivery(session, delivery_id, event, payload.get("action"), utcnow())
    if delivery_row is None:
        return Outcome("duplicate", f"delivery {delivery_id} was already handled")
    run = create_run(session, ctx, trigger)
    repo.link_delivery(session, delivery_row, run.id)
    return Outcome("queued", f"run {run.id} for {trigger.sha[:12]}", run.id)


# --------------------------------------------------------------------------------------
# Commit statuses


@dataclass(frozen=True)
class DueStatus:
    job_state: str
    status: CommitStatus


def status_for_job(session: Session, settings: Settings, job_id: int) -> DueStatus | None:
    """The commit status that says the job's *current* state (so a late retry never overwrites a
    newer status); None if the job is gone or its project is not on GitHub."""
    found = jobs_repo.job_context(session, [job_id]).get(job_id)
    if found is None:
        return None
    job, project, commit, hw = found
    if not project.github_repo:
        return None
    state, description = STATES[job.state]
    if job.state in ("failed", "timed_out") and job.failure_class:
        description = f"{description}: {job.failure_class}" + (f": {job.message}" if job.message else "")
    status = CommitStatus(
        repo=project.github_repo,
        sha=commit.sha,
        state=state,
        context=f"{settings.github_status_context}/{job.suite}/{hw.name}",
        description=f"{job.suite} on {hw.name}: {description}",
        target_url=f"{settings.public_url.rstrip('/')}/api/v1/jobs/{job.id}",
    )
    return DueStatus(job.state, status)


def record_reported(session: Session, job_id: int, job_state: str, http_status: int) -> None:
    """GitHub answered for this job state: 2xx (shown) or a 4xx no retry can fix."""
    repo.record_status(session, job_id, job_state, http_status, utcnow())


def unreported_jobs(session: Session, settings: Settings) -> list[int]:
    """Jobs whose state changed more than github_status_resend_after_s ago (time for the post
    and all its retries) and less than RESEND_HORIZON ago, and that GitHub never acknowledged."""
    now = utcnow()
    return repo.unreported_job_ids(
        session,
        changed_after=now - RESEND_HORIZON,
        changed_before=now - timedelta(seconds=settings.github_status_resend_after_s),
        limit=RESEND_BATCH,
    )
