"""Task bodies of the jobs domain: `jobs.reap_expired` (the lease reaper).

It runs in its own transaction and is safe to run twice."""

from __future__ import annotations

import logging
from typing import Any

from bench_server.jobs import service
from bench_server.kit.outbox import AppContext

log = logging.getLogger(__name__)


def reap_expired(ctx: AppContext) -> dict[str, Any]:
    with ctx.db.transaction() as session:
        report = service.reap(session, ctx)
    if report.requeued:
        log.warning("requeued jobs with expired leases: %s", report.requeued)
    if report.failed or report.timed_out:
        log.warning("jobs failed as runner_lost: %s; timed out: %s", report.failed, report.timed_out)
    return {
        "requeued": report.requeued,
        "finished": report.finished,
        "failed": report.failed,
        "timed_out": report.timed_out,
    }
