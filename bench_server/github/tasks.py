"""Task bodies of the github domain: `github.post_status` (a job's state as a commit status) and
the sweep `github.resend_statuses` (statuses whose posts exhausted their retries)."""

from __future__ import annotations

import logging
from typing import Any

from bench_server.github import service
from bench_server.github.status import post_commit_status
from bench_server.kit.outbox import AppContext, send

log = logging.getLogger(__name__)


def post_status(ctx: AppContext, job_id: int) -> dict[str, Any] | None:
    """Post the job's current state; once GitHub answers (not a transient failure), record the
    state it answered for."""
    settings = ctx.settings
    if not settings.github_token:
        return None
    with ctx.db.read_only() as session:
        due = service.status_for_job(session, settings, job_id)
    if due is None:
        return None
    code = post_commit_status(settings, due.status)
    with ctx.db.transaction() as session:
        service.record_reported(session, job_id, due.job_state, code)
    return {"job_id": job_id, "state": due.status.state, "http_status": code}


def resend_statuses(ctx: AppContext) -> list[int]:
    if not ctx.settings.github_token:
        return []
    with ctx.db.read_only() as session:
        job_ids = service.unreported_jobs(session, ctx.settings)
    if job_ids:
        log.warning("posting the commit statuses GitHub never acknowledged again, for jobs %s", job_ids)
    for job_id in job_ids:
        send(ctx, "github.post_status", job_id)
    return job_ids
