"""The job lifecycle as a runner drives it: claim and lease, start, log, finish, release; cancel;
the lease reaper; and the job reads. Services take the session; the request or task boundary
commits. Jobs are created by a run's fan-out (`bench_server.runs`).

States: queued -> claimed -> running -> succeeded | failed | timed_out, and cancelled from any
active state. A claim takes a lease; a lease that expires puts the job back in the queue (up to
`max_attempts` claims), after which the job fails with failure class `runner_lost`. Entering
`running` or a final state is reported to GitHub as a commit status (`github.post_status`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from bench_server.jobs import repository as repo
from bench_server.jobs.bell import bell
from bench_server.jobs.schemas import JobFilters
from bench_server.kit.errors import Conflict, InvalidInput, NotFound
from bench_server.kit.outbox import AppContext, after_commit, enqueue_after_commit
from bench_server.kit.paging import Listing
from bench_server.kit.settings import Settings
from bench_server.models import FAILURE_CLASSES, Commit, HardwareClass, Job, Project
from bench_server.models.base import utcnow
from bench_server.models.jobs import ACTIVE_JOB_STATES, FINAL_JOB_STATES
from bench_server.runners import repository as runners_repo
from bench_server.runners import service as runners

LOG_TRUNCATED = "[... log truncated by the server ...]\n"


def wake_claims_after_commit(session: Session, n: int) -> None:
    """`n` jobs become claimable when this transaction commits: wake as many waiting claims."""
    if n:
        after_commit(session, functools.partial(bell.ring, n))


# --------------------------------------------------------------------------------------
# Runner side


def claim_payload(
    settings: Settings, job: Job, project: Project, commit: Commit, hw: HardwareClass
) -> dict[str, Any]:
    return {
        "id": job.id,
        "project": {
            "slug": project.slug,
            "clone_url": project.clone_url,
            "default_branch": project.default_branch,
        },
        "commit": {"sha": commit.sha, "branch": job.branch or commit.branch},
        "suite": job.suite,
        "hardware_class": hw.name,
        "attempt": job.attempt,
        "lease_expires_at": job.lease_expires_at.isoformat() if job.lease_expires_at else None,
        "lease_seconds": settings.lease_seconds,
    }


def claim_next(session: Session, settings: Settings, runner_id: int) -> dict[str, Any] | None:
    """Claim the best queued job of the runner's hardware class, or None."""
    runner = runners.get_runner(session, runner_id)
    if runner.status == "disabled":
        return None
    for _ in range(5):  # a lost race on SQLite (the row changed under us) tries the next job
        job_id = repo.next_queued_job_id(session, runner.hardware_class_id)
        if job_id is None:
            return None
        now = utcnow()
        if repo.mark_claimed(
            session, job_id, runner_id, now, now + timedelta(seconds=settings.lease_seconds)
        ):
            return claim_payload(settings, *repo.claimed_job(session, job_id))
    return None


def _held(session: Session, job_id: int, runner_id: int) -> Job:
    job = repo.held_job(session, job_id, runner_id)
    if job is not None:
        return job
    current = repo.get_job(session, job_id)
    if current is None:
        raise NotFound(f"no job {job_id}")
    if current.state == "cancelled":
        raise Conflict(f"job {job_id} was cancelled", code="job_cancelled")
    raise Conflict(
        f"job {job_id} is not held by this runner (state {current.state}); its lease was lost",
        code="lease_lost",
    )


def renew_lease(session: Session, settings: Settings, job_id: int, runner_id: int) -> Job:
    job = _held(session, job_id, runner_id)
    job.lease_expires_at = utcnow() + timedelta(seconds=settings.lease_seconds)
    return job


def _notify(session: Session, ctx: AppContext, job: Job) -> None:
    if ctx.settings.github_token:
        enqueue_after_commit(session, ctx, "github.post_status", job.id)


def start_job(session: Session, ctx: AppContext, job_id: int, runner_id: int) -> Job:
    job = _held(session, job_id, runner_id)
    if job.state == "claimed":
        now = utcnow()
        job.state = "running"
        job.started_at = now
        job.lease_expires_at = now + timedelta(seconds=ctx.settings.lease_seconds)
        _notify(session, ctx, job)
    return job


def cap_log(text: str, max_bytes: int) -> str:
    data = text.encode("utf-8", errors="replace")
    if len(data) <= max_bytes:
        return text
    keep = max_bytes - len(LOG_TRUNCATED.encode())
    return LOG_TRUNCATED + data[-keep:].decode("utf-8", errors="ignore")


def store_log(session: Session, settings: Settings, job_id: int, runner_id: int, text: str) -> int:
    job = repo.lock_job(session, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    if job.runner_id != runner_id or job.state == "queued":
        raise Conflict(f"job {job_id} is not held by this runner", code="lease_lost")
    job.log = cap_log(text, settings.job_log_max_bytes)
    return len(job.log.encode())


def finish_job(
    session: Session,
    ctx: AppContext,
    job_id: int,
    runner_id: int,
    state: str,
    failure_class: str | None,
    message: str | None,
) -> Job:
    if failure_class is not None and failure_class not in FAILURE_CLASSES:
        raise InvalidInput("failure_class", f"one of {', '.join(FAILURE_CLASSES)}")
    current = repo.get_job(session, job_id)
    if current is not None and current.runner_id == runner_id and current.state == state:
        return current  # a retried finish
    job = _held(session, job_id, runner_id)
    _close(job, state, failure_class if state != "succeeded" else None, message, utcnow())
    _notify(session, ctx, job)
    return job


def release_job(session: Session, job_id: int, runner_id: int) -> Job:
    job = _held(session, job_id, runner_id)
    _requeue(job, f"released by runner {runner_id} (attempt {job.attempt})")
    wake_claims_after_commit(session, 1)
    return job


def _close(job: Job, state: str, failure_class: str | None, message: str | None, now: datetime) -> None:
    """Put a job in a final state; the lease goes with it."""
    job.state = state
    job.failure_class = failure_class
    job.message = message
    job.finished_at = now
    job.lease_expires_at = None


def _requeue(job: Job, why: str) -> None:
    job.state = "queued"
    job.runner_id = None
    job.lease_expires_at = None
    job.claimed_at = None
    job.started_at = None
    job.message = why


def cancel_job(session: Session, ctx: AppContext, job_id: int, why: str | None) -> Job:
    job = repo.lock_job(session, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    if job.state == "cancelled":
        return job
    if job.state in FINAL_JOB_STATES:
        raise Conflict(f"job {job_id} already finished ({job.state})", code="job_finished")
    _close(job, "cancelled", job.failure_class, why or "cancelled", utcnow())
    _notify(session, ctx, job)
    return job


# --------------------------------------------------------------------------------------
# The reaper


@dataclass
class ReapReport:
    requeued: list[int] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    timed_out: list[int] = field(default_factory=list)


def reap(session: Session, ctx: AppContext, now: datetime | None = None) -> ReapReport:
    """Requeue jobs whose lease expired (or fail them as runner_lost after max_attempts), time
    out jobs running past job_timeout_s. A job given up on is also recorded as a failure."""
    now = now or utcnow()
    report = ReapReport()
    for job in repo.expired_leases(session, now):
        who = f"runner {job.runner_id}"
        batches = repo.delivered_batches(session, job.id, job.claimed_at)
        if batches:
            # The runner delivered its results (perhaps from its spool after an outage) but its
            # finish never arrived: close the job from what it delivered rather than run it again.
            failed = any(f for _, f in batches) and not any(r for r, _ in batches)
            _close(
                job,
                "failed" if failed else "succeeded",
                "crash" if failed else None,
                f"closed by the server: results arrived from {who} but its finish did not",
                now,
            )
            report.finished.append(job.id)
            _notify(session, ctx, job)
        elif job.attempt >= job.max_attempts:
            msg = f"lease expired on {who} at attempt {job.attempt} of {job.max_attempts}; giving up"
            _close(job, "failed", "runner_lost", msg, now)
            repo.add_failure(session, job, "runner_lost", msg)
            report.failed.append(job.id)
            _notify(session, ctx, job)
        else:
            _requeue(job, f"lease expired on {who} (attempt {job.attempt}); requeued")
            report.requeued.append(job.id)
    for job in repo.overdue_jobs(session, now - timedelta(seconds=ctx.settings.job_timeout_s)):
        msg = f"running for more than {ctx.settings.job_timeout_s:.0f} s"
        _close(job, "timed_out", "timeout", msg, now)
        repo.add_failure(session, job, "timeout", msg)
        report.timed_out.append(job.id)
        _notify(session, ctx, job)
    wake_claims_after_commit(session, len(report.requeued))
    return report


# --------------------------------------------------------------------------------------
# Reads


def job_row(job: Job, project: str, sha: str, hardware_class: str, runner: str | None) -> dict[str, Any]:
    return {
        "id": job.id,
        "run_id": job.run_id,
        "project": project,
        "sha": sha,
        "branch": job.branch,
        "suite": job.suite,
        "hardware_class": hardware_class,
        "state": job.state,
        "priority": job.priority,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "runner": runner,
        "lease_expires_at": job.lease_expires_at,
        "failure_class": job.failure_class,
        "message": job.message,
        "forced": job.forced,
        "created_at": job.created_at,
        "claimed_at": job.claimed_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


def get_job(session: Session, job_id: int) -> dict[str, Any]:
    found = repo.job_context(session, [job_id]).get(job_id)
    if found is None:
        raise NotFound(f"no job {job_id}")
    job, project, commit, hw = found
    runner = runners_repo.get_runner(session, job.runner_id) if job.runner_id else None
    return job_row(job, project.slug, commit.sha, hw.name, runner.name if runner else None) | {"log": job.log}


def jobs_listing(filters: JobFilters) -> Listing:
    return repo.jobs_listing(filters)


def job_board(session: Session, *, queue_limit: int = 200, recent_limit: int = 50) -> dict[str, Any]:
    """The job queue (queued, claimed, running: best priority, oldest first) and the newest
    finished jobs, for the website's runners and jobs page."""
    queue = JobFilters(list(ACTIVE_JOB_STATES), None, None, None, None, None, None)
    finished = JobFilters(list(FINAL_JOB_STATES), None, None, None, None, None, None)
    return {
        "queue": repo.jobs_rows(session, queue, oldest_first=True, limit=queue_limit),
        "recent": repo.jobs_rows(session, finished, oldest_first=False, limit=recent_limit),
    }
