"""Task bodies of the runners domain: `runners.mark_offline`."""

from __future__ import annotations

import logging

from bench_server.kit.outbox import AppContext
from bench_server.runners import service

log = logging.getLogger(__name__)


def mark_offline(ctx: AppContext) -> list[int]:
    with ctx.db.transaction() as session:
        ids = service.mark_offline(session, ctx.settings)
    if ids:
        log.warning(
            "runners marked offline after %.0f s of silence: %s", ctx.settings.runner_offline_after_s, ids
        )
    return ids
