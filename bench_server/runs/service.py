"""Triggers and fan-out. A trigger records the commit and a run; after the commit, the
`runs.fan_out` task turns the run into one job per suite x hardware class. Services take the
session; the request or task boundary commits."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from bench_server.catalog.repository import hardware_class_by_name, project_by_slug, upsert_commit
from bench_server.jobs import repository as jobs_repo
from bench_server.jobs import service as jobs
from bench_server.kit.errors import InvalidInput, NotFound
from bench_server.kit.outbox import AppContext, enqueue_after_commit
from bench_server.kit.settings import Settings
from bench_server.models import Project, Run
from bench_server.models.base import utcnow
from bench_server.models.jobs import ACTIVE_JOB_STATES
from bench_server.runners import service as runners
from bench_server.runs import repository as repo

DEFAULT_SUITES = ["default"]
SUITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
SHA = re.compile(r"^[0-9a-f]{7,64}$")
# A run not fanned out this long after it was created lost its fan-out task.
FAN_OUT_GRACE = timedelta(seconds=60)


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


def _check_suite_names(suites: list[str]) -> None:
    bad = [s for s in suites if not SUITE_NAME.match(s)]
    if bad:
        raise InvalidInput("suites", f"not suite names: {', '.join(map(repr, bad))}")


def set_project_suites(session: Session, slug: str, suites: list[str]) -> list[str]:
    """The suites a trigger runs when it names none."""
    _check_suite_names(suites)
    project = project_by_slug(session, slug)
    project.suites = sorted(set(suites))
    return project_suites(project)


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


def create_run(session: Session, ctx: AppContext, trigger: Trigger) -> Run:
    """Record the commit and a run; the fan-out into jobs is sent after the commit."""
    project = project_by_slug(session, trigger.project)
    sha = trigger.sha.strip().lower()
    if not SHA.match(sha):
        raise InvalidInput("sha", "a commit sha: 7 to 64 hex digits")
    suites = None
    if trigger.suites:
        _check_suite_names(trigger.suites)
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
    repo.add_run(session, run)
    enqueue_after_commit(session, ctx, "runs.fan_out", run.id)
    return run


def fan_out(session: Session, settings: Settings, run_id: int) -> list[int]:
    """Create the run's jobs: one per suite x hardware class (classes named by the trigger, else
    those with registered runners). Safe to run twice: a run fans out once."""
    run = repo.lock_run(session, run_id)
    if run is None or run.fanned_out_at is not None:
        return []
    project, commit = repo.subject_of(session, run)
    suites = [str(s) for s in run.suites] if run.suites else project_suites(project)
    if run.hardware_classes:
        class_ids = [hardware_class_by_name(session, str(n)).id for n in run.hardware_classes]
    else:
        class_ids = runners.hardware_classes_with_runners(session)
    branch = branch_from_ref(run.ref) or commit.branch
    priority = (
        run.priority
        if run.priority is not None
        else priority_for(settings, project, branch, run.pull_request)
    )
    existing = set() if run.forced else jobs_repo.existing_identities(session, project.id, commit.id)
    created: list[int] = []
    now = utcnow()
    for suite in suites:
        for hw_id in class_ids:
            if (suite, hw_id) in existing:
                continue
            job_id = jobs_repo.insert_job(
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
    jobs.wake_claims_after_commit(session, len(created))
    return created


def stale_runs(session: Session) -> list[int]:
    """Runs that should have fanned out by now: their fan-out task was lost (the broker was
    down when they were created)."""
    return repo.runs_not_fanned_out(session, utcnow() - FAN_OUT_GRACE)


def run_status(session: Session, run_id: int) -> dict[str, Any]:
    run = repo.get_run(session, run_id)
    if run is None:
        raise NotFound(f"no run {run_id}")
    project, commit = repo.subject_of(session, run)
    rows = [
        jobs.job_row(j, project.slug, commit.sha, hw, r) for j, hw, r in jobs_repo.run_jobs(session, run.id)
    ]
    counts: dict[str, int] = {}
    for j in rows:
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
        "jobs": rows,
        "counts": counts,
        "done": fanned_out and all(j["state"] not in ACTIVE_JOB_STATES for j in rows),
        "succeeded": fanned_out and all(j["state"] == "succeeded" for j in rows),
    }


def latest_run_status(session: Session, project_slug: str, sha: str) -> dict[str, Any]:
    """The newest run for a commit (a sha or a prefix of it)."""
    project = project_by_slug(session, project_slug)
    run_id = repo.latest_run_id(session, project.id, sha)
    if run_id is None:
        raise NotFound(f"no run for {sha!r} in project {project_slug!r}")
    return run_status(session, run_id)
