"""The job lifecycle: triggers (runs), fan-out, claim and lease, start/log/finish/release, cancel,
and the lease reaper. Services take the session; the request or task boundary commits.

States: queued -> claimed -> running -> succeeded | failed | timed_out, and cancelled from any
active state. A claim takes a lease; a lease that expires puts the job back in the queue (up to
`max_attempts` claims), after which the job fails with failure class `runner_lost`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bench_server.catalog.repository import hardware_class_by_name, project_by_slug, upsert_commit
from bench_server.jobs import repository as repo
from bench_server.kit.errors import Conflict, InvalidInput, NotFound
from bench_server.kit.settings import Settings
from bench_server.models import FAILURE_CLASSES, Commit, Failure, HardwareClass, Job, Project, Run, Runner
from bench_server.models.base import utcnow
from bench_server.models.jobs import ACTIVE_JOB_STATES, FINAL_JOB_STATES
from bench_server.tasks import TaskContext, enqueue_after_commit

DEFAULT_SUITES = ["default"]
SUITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
SHA = re.compile(r"^[0-9a-f]{7,64}$")
LOG_TRUNCATED = "[... log truncated by the server ...]\n"


def branch_from_ref(ref: str | None) -> str | None:
    """`refs/heads/main` -> `main`; `refs/pull/3/merge` and tags -> None; a bare name stays."""
    if not ref:
        return None
    if ref.startswith("refs/heads/"):
        return ref[len("refs/heads/") :]
    if ref.startswith("refs/"):
        return None
    return ref


def priority_for(settings: Settings, project: Project, branch: str | None, pull_request: int | None) -> int:
    if pull_request is not None:
        return settings.priority_pull_request
    if branch == project.default_branch:
        return settings.priority_default_branch
    return settings.priority_branch


def project_suites(project: Project) -> list[str]:
    return [str(s) for s in (project.suites or DEFAULT_SUITES)]


# --------------------------------------------------------------------------------------
# Triggers


@dataclass
class Trigger:
    project: str
    sha: str
    ref: str | None = None
    branch: str | None = None
    suites: list[str] | None = None
    hardware_classes: list[str] | None = None
    force: bool = False
    source: str = "api"
    pull_request: int | None = None
    priority: int | None = None
    commit: dict[str, Any] = field(default_factory=dict)  # parents, author, message, committed_at


def create_run(session: Session, ctx: TaskContext, trigger: Trigger) -> Run:
    """Record the commit and a run; the fan-out into jobs is sent after the commit."""
    project = project_by_slug(session, trigger.project)
    sha = trigger.sha.strip().lower()
    if not SHA.match(sha):
        raise InvalidInput("sha", "a commit sha: 7 to 64 hex digits")
    suites = None
    if trigger.suites:
        bad = [s for s in trigger.suites if not SUITE_NAME.match(s)]
        if bad:
            raise InvalidInput("suites", f"not suite names: {', '.join(map(repr, bad))}")
        suites = sorted(set(trigger.suites))
    classes = None
    if trigger.hardware_classes:
        classes = sorted(
            {
                hardware_class_by_name(session, n, field="hardware_classes").name
                for n in trigger.hardware_classes
            }
        )
    branch = trigger.branch or branch_from_ref(trigger.ref)
    commit = upsert_commit(session, project, sha, branch=branch, **trigger.commit)
    run = Run(
        project_id=project.id,
        commit_id=commit.id,
        ref=trigger.ref,
        source=trigger.source,
        suites=suites,
        hardware_classes=classes,
        forced=trigger.force,
        pull_request=trigger.pull_request,
        priority=trigger.priority,
    )
    session.add(run)
    session.flush()
    enqueue_after_commit(session, ctx, "runs.fan_out", run.id)
    return run


def fan_out(session: Session, settings: Settings, run_id: int) -> list[int]:
    """Create the run's jobs: one per suite x hardware class (classes named by the trigger, else
    those with registered runners). Safe to run twice: a run fans out once."""
    run = repo.lock_run(session, run_id)
    if run is None or run.fanned_out_at is not None:
        return []
    project = session.get_one(Project, run.project_id)
    commit = session.get_one(Commit, run.commit_id)
    suites = [str(s) for s in run.suites] if run.suites else project_suites(project)
    if run.hardware_classes:
        class_ids = [hardware_class_by_name(session, str(n)).id for n in run.hardware_classes]
    else:
        class_ids = repo.runner_hardware_class_ids(session)
    branch = branch_from_ref(run.ref) or commit.branch
    priority = (
        run.priority
        if run.priority is not None
        else priority_for(settings, project, branch, run.pull_request)
    )
    existing = set() if run.forced else repo.existing_identities(session, project.id, commit.id)
    created: list[int] = []
    now = utcnow()
    for suite in suites:
        for hw_id in class_ids:
            if (suite, hw_id) in existing:
                continue
            job_id = repo.insert_job(
                session,
                {
                    "run_id": run.id,
                    "project_id": project.id,
                    "commit_id": commit.id,
                    "branch": branch,
                    "suite": suite,
                    "hardware_class_id": hw_id,
                    "state": "queued",
                    "priority": priority,
                    "attempt": 0,
                    "max_attempts": settings.max_attempts,
                    "forced": run.forced,
                    "created_at": now,
                },
            )
            if job_id is not None:
                created.append(job_id)
    run.fanned_out_at = now
    return created


# --------------------------------------------------------------------------------------
# Runner side


def _runner(session: Session, runner_id: int) -> Runner:
    runner = session.get(Runner, runner_id)
    if runner is None:
        raise NotFound(f"runner {runner_id} is not registered")
    return runner


def touch_runner(session: Session, runner_id: int) -> Runner:
    runner = _runner(session, runner_id)
    runner.last_heartbeat_at = utcnow()
    if runner.status == "offline":
        runner.status = "online"
    return runner


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
    runner = _runner(session, runner_id)
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
            job, project, commit, hw = repo.job_context(session, [job_id])[job_id]
            session.refresh(job)
            return claim_payload(settings, job, project, commit, hw)
    return None


def _held(session: Session, job_id: int, runner_id: int) -> Job:
    job = repo.held_job(session, job_id, runner_id)
    if job is not None:
        return job
    current = session.get(Job, job_id)
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


def _notify(session: Session, ctx: TaskContext, job: Job) -> None:
    if ctx.settings.github_token:
        enqueue_after_commit(session, ctx, "github.post_status", job.id)


def start_job(session: Session, ctx: TaskContext, job_id: int, runner_id: int) -> Job:
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
    ctx: TaskContext,
    job_id: int,
    runner_id: int,
    state: str,
    failure_class: str | None,
    message: str | None,
) -> Job:
    if failure_class is not None and failure_class not in FAILURE_CLASSES:
        raise InvalidInput("failure_class", f"one of {', '.join(FAILURE_CLASSES)}")
    current = session.get(Job, job_id)
    if current is not None and current.runner_id == runner_id and current.state == state:
        return current  # a retried finish
    job = _held(session, job_id, runner_id)
    _close(job, state, failure_class if state != "succeeded" else None, message, utcnow())
    _notify(session, ctx, job)
    return job


def release_job(session: Session, job_id: int, runner_id: int) -> Job:
    job = _held(session, job_id, runner_id)
    _requeue(job, f"released by runner {runner_id} (attempt {job.attempt})")
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


def cancel_job(session: Session, ctx: TaskContext, job_id: int, why: str | None) -> Job:
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
    stale_runs: list[int] = field(default_factory=list)


def _failure_row(job: Job, failure_class: str, message: str) -> Failure:
    commit_branch = job.branch
    return Failure(
        project_id=job.project_id,
        commit_id=job.commit_id,
        branch=commit_branch,
        hardware_class_id=job.hardware_class_id,
        job_id=job.id,
        suite=job.suite,
        failure_class=failure_class,
        message=message,
    )


def reap(session: Session, ctx: TaskContext, now: datetime | None = None) -> ReapReport:
    """Requeue jobs whose lease expired (or fail them as runner_lost after max_attempts), time
    out jobs running past job_timeout_s, and list runs whose fan-out never happened."""
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
            session.add(_failure_row(job, "runner_lost", msg))
            report.failed.append(job.id)
            _notify(session, ctx, job)
        else:
            _requeue(job, f"lease expired on {who} (attempt {job.attempt}); requeued")
            report.requeued.append(job.id)
    for job in repo.overdue_jobs(session, now - timedelta(seconds=ctx.settings.job_timeout_s)):
        msg = f"running for more than {ctx.settings.job_timeout_s:.0f} s"
        _close(job, "timed_out", "timeout", msg, now)
        session.add(_failure_row(job, "timeout", msg))
        report.timed_out.append(job.id)
        _notify(session, ctx, job)
    report.stale_runs = repo.runs_not_fanned_out(session, now - timedelta(seconds=60))
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
    runner = session.get(Runner, job.runner_id) if job.runner_id else None
    return job_row(job, project.slug, commit.sha, hw.name, runner.name if runner else None) | {"log": job.log}


def run_status(session: Session, run_id: int) -> dict[str, Any]:
    run = session.get(Run, run_id)
    if run is None:
        raise NotFound(f"no run {run_id}")
    project = session.get_one(Project, run.project_id)
    commit = session.get_one(Commit, run.commit_id)
    jobs = [job_row(j, project.slug, commit.sha, hw, r) for j, hw, r in repo.run_jobs(session, run.id)]
    counts: dict[str, int] = {}
    for j in jobs:
        counts[j["state"]] = counts.get(j["state"], 0) + 1
    fanned_out = run.fanned_out_at is not None
    return {
        "id": run.id,
        "project": project.slug,
        "sha": commit.sha,
        "ref": run.ref,
        "source": run.source,
        "suites": run.suites,
        "hardware_classes": run.hardware_classes,
        "forced": run.forced,
        "pull_request": run.pull_request,
        "created_at": run.created_at,
        "fanned_out_at": run.fanned_out_at,
        "jobs": jobs,
        "counts": counts,
        "done": fanned_out and all(j["state"] not in ACTIVE_JOB_STATES for j in jobs),
        "succeeded": fanned_out and all(j["state"] == "succeeded" for j in jobs),
    }


def latest_run_for(session: Session, project_slug: str, sha: str) -> int | None:
    project = project_by_slug(session, project_slug)
    return session.scalars(
        select(Run.id)
        .join(Commit, Commit.id == Run.commit_id)
        .where(Run.project_id == project.id, Commit.sha.startswith(sha.lower()))
        .order_by(Run.id.desc())
        .limit(1)
    ).first()
