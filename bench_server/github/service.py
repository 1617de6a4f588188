"""GitHub: webhook deliveries become runs (`push` to a branch; `pull_request` opened, synchronize
or reopened; a delivery id, and an event, is handled once), and jobs' states become commit statuses (posted by
`github.post_status`; those GitHub never acknowledged are found again for
`github.resend_statuses`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from bench_server.github import repository as repo
from bench_server.github.schemas import PullRequestEvent, PushEvent
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


def _push_trigger(project: Project, event: PushEvent) -> Trigger | str:
    ref, after = event.ref, event.after
    if event.deleted or after == ZERO_SHA:
        return "a deleted ref has no commit to benchmark"
    if not ref.startswith("refs/heads/"):
        return f"{ref or 'this ref'} is not a branch"
    head = event.head_commit
    commits = event.commits
    parents: list[str] = []
    if len(commits) >= 2 and commits[-1].id == after:
        parents = [commits[-2].id]
    elif len(commits) <= 1 and event.before not in (None, ZERO_SHA):
        parents = [str(event.before)]
    return Trigger(
        project=project.slug,
        sha=after,
        ref=ref,
        source="webhook",
        commit={
            "parents": parents,
            "author": head.author.name if head and head.author else None,
            "message": head.message if head else None,
            "committed_at": head.timestamp if head else None,
        },
    )


def _pull_request_trigger(project: Project, event: PullRequestEvent) -> Trigger | str:
    if event.action not in PR_ACTIONS:
        return f"pull_request action {event.action!r} is not benchmarked"
    head = event.pull_request.head
    number = event.pull_request.number
    return Trigger(
        project=project.slug,
        sha=head.sha,
        ref=f"refs/pull/{number}/head",
        branch=head.ref,
        source="webhook",
        pull_request=number,
    )


def event_key(event: PushEvent | PullRequestEvent) -> str:
    """What makes two deliveries the same event, hashed: a captured body re-sent under a fresh
    delivery id is recognised (a force-push back to an earlier commit has another `before`)."""
    repo_name = event.repository.full_name.lower()
    if isinstance(event, PushEvent):
        parts = ["push", repo_name, event.ref, event.before or "", event.after]
    else:
        pr = event.pull_request
        parts = ["pull_request", repo_name, str(pr.number), event.action, pr.head.sha]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def handle_event(
    session: Session, ctx: AppContext, delivery_id: str, event: PushEvent | PullRequestEvent
) -> Outcome:
    project = repo.project_for_repo(session, event.repository.full_name)
    if project is None:
        return Outcome("ignored", "no project has this github_repo")
    if isinstance(event, PushEvent):
        name, action, trigger = "push", None, _push_trigger(project, event)
    else:
        name, action, trigger = "pull_request", event.action, _pull_request_trigger(project, event)
    if isinstance(trigger, str):
        return Outcome("ignored", trigger)
    delivery_row = repo.record_delivery(session, delivery_id, event_key(event), name, action, utcnow())
    if delivery_row is None:
        return Outcome("duplicate", f"delivery {delivery_id}, or the same event, was already handled")
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
