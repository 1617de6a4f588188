"""Task bodies of the analysis: `analysis.update` (after each ingest commits: only the series the
batch touched), `analysis.reanalyse_project` (after a project's settings change: everything,
from scratch) and the sweep `analysis.catch_up` (batches whose update was lost).

Each unit of work runs in its own transaction and reloads its rows by id; re-running any of them
finds the same alerts. A lost race with a concurrent analysis (a deadlock, a twin's insert) is
transient: the task is retried and redoes its work.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy.exc import IntegrityError, OperationalError

from bench_server.analysis import service
from bench_server.kit.errors import TransientError
from bench_server.kit.outbox import AppContext, send

log = logging.getLogger(__name__)


def run_all(ctx: AppContext, work: Sequence[service.Work]) -> service.Summary:
    """Run units of work, each in its own transaction."""
    summary = service.Summary()
    for item in work:
        try:
            with ctx.db.transaction() as session:
                summary.add(service.run(session, ctx, item))
        except (IntegrityError, OperationalError) as exc:
            raise TransientError(f"analysis of {item} lost a race: {exc}") from exc
    return summary


def update(ctx: AppContext, batch_id: int) -> dict[str, Any]:
    with ctx.db.read_only() as session:
        work = service.plan_batch(session, batch_id)
    summary = run_all(ctx, work)
    with ctx.db.transaction() as session:
        service.mark_analysed(session, batch_id)
    if summary.alerts_created or summary.alerts_withdrawn:
        log.info("batch %s: %s", batch_id, summary)
    return asdict(summary)


def reanalyse_project(ctx: AppContext, project_id: int) -> dict[str, Any]:
    with ctx.db.read_only() as session:
        work = service.plan_project(session, project_id)
    return asdict(run_all(ctx, work))


def catch_up(ctx: AppContext) -> list[int]:
    with ctx.db.read_only() as session:
        missed = service.missed_batches(session, ctx.settings)
    if missed:
        log.warning("batches %s were never analysed; analysing them now", missed)
    for batch_id in missed:
        send(ctx, "analysis.update", batch_id)
    return missed
