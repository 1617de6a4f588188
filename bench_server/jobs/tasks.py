"""Task bodies of the jobs domain: `runs.fan_out` and `jobs.reap_expired`.

Each runs in its own transaction, reloads its rows by id and is safe to run twice."""

from __future__ import annotations

import logging
from typing import Any

from bench_server.jobs import service
from bench_server.jobs.bell import bell
from bench_server.tasks import TaskContext, send

log = logging.getLogger(__name__)


def fan_out(ctx: TaskContext, run_id: int) -> list[int]:
    with ctx.db.transaction() as session:
        created = service.fan_out(session, ctx.settings, run_id)
    if created:
        log.info("run %s: %d jobs queued", run_id, len(created))
        bell.ring(len(created))
    return created


def reap_expired(ctx: TaskContext) -> dict[str, Any]:
    with ctx.db.transaction() as session:
        report = service.reap(session, ctx)
    if report.requeued:
        log.warning("requeued jobs with expired leases: %s", report.requeued)
        bell.ring(len(report.requeued))
    if report.failed or report.timed_out:
        log.warning("jobs failed as runner_lost: %s; timed out: %s", report.failed, report.timed_out)
    for run_id in report.stale_runs:  # its fan-out task was lost (broker down at the time)
        send(ctx, "runs.fan_out", run_id)
    return {
        "requeued": report.requeued,
        "finished": report.finished,
        "failed": report.failed,
        "timed_out": report.timed_out,
        "stale_runs": report.stale_runs,
    }
