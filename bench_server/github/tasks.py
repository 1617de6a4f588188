"""Task bodies of the github domain: `github.post_status` (a job's state as a commit status)."""

from __future__ import annotations

import logging
from typing import Any

from bench_server.github.status import STATES, CommitStatus, post_commit_status
from bench_server.jobs import repository as jobs_repo
from bench_server.tasks import TaskContext

log = logging.getLogger(__name__)


def post_status(ctx: TaskContext, job_id: int) -> dict[str, Any] | None:
    """Post the job's *current* state, so a late retry never overwrites a newer status."""
    settings = ctx.settings
    if not settings.github_token:
        return None
    with ctx.db.read_only() as session:
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
    code = post_commit_status(settings, status)
    return {"job_id": job_id, "state": status.state, "http_status": code}
