"""Task bodies of the runs domain: `runs.fan_out` and the sweep `runs.fan_out_stale`.

Each runs in its own transaction, reloads its rows by id and is safe to run twice."""

from __future__ import annotations

import logging

from bench_server.kit.outbox import AppContext
from bench_server.runs import service

log = logging.getLogger(__name__)


def fan_out(ctx: AppContext, run_id: int) -> list[int]:
    with ctx.db.transaction() as session:
        created = service.fan_out(session, ctx.settings, run_id)
    if created:
        log.info("run %s: %d jobs queued", run_id, len(created))
    return created


def fan_out_stale(ctx: AppContext) -> list[int]:
    """Fan out the runs whose fan-out task was lost, each in its own transaction."""
    with ctx.db.read_only() as session:
        stale = service.stale_runs(session)
    for run_id in stale:
        log.warning("run %s was never fanned out; fanning it out now", run_id)
        fan_out(ctx, run_id)
    return stale
