"""The after-commit outbox: work that a transaction makes necessary leaves only once it commits.

`enqueue_after_commit` remembers a task on the session and sends it when the session's
transaction commits, or forgets it if the transaction rolls back, so a worker never sees the id of
a row that was not stored. `after_commit` does the same for any callback (waking long-polls).
`send` dispatches at once: to the Celery broker, or to the embedded worker thread when the broker
is `memory://`.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from bench_server.kit.db import Database
from bench_server.kit.embedded import local_worker
from bench_server.kit.settings import Settings
from bench_server.tasks import TASKS, make_celery

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppContext:
    """What services and task bodies need from the running application: its database and its
    settings (which also say where tasks go)."""

    db: Database
    settings: Settings


def is_embedded(settings: Settings) -> bool:
    return settings.broker_url.startswith("memory://")


_senders: dict[tuple[str, str | None], Celery] = {}
_senders_lock = threading.Lock()


def _sender(settings: Settings) -> Celery:
    # The API may run with other settings than the environment's (tests); send through an app
    # configured for the broker those settings name, built on the first send.
    key = (settings.broker_url, settings.result_backend)
    with _senders_lock:
        if key not in _senders:
            _senders[key] = make_celery(settings)
        return _senders[key]


def send(ctx: AppContext, name: str, *args: Any) -> None:
    """Send a task now (callers outside a transaction, e.g. a task body after its commit)."""
    if name not in TASKS:
        raise KeyError(name)
    if is_embedded(ctx.settings):
        local_worker.submit(name, args, ctx)
        return
    try:
        _sender(ctx.settings).send_task(name, args=list(args), queue=TASKS[name].queue)
    except Exception:  # the broker is down: the beat's sweeps pick unfinished work up later
        log.exception("could not send task %s%r", name, args)


_PENDING = "bench_after_commit"


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Call `callback` once the session's transaction commits; forget it if it rolls back."""
    pending: list[Callable[[], None]] | None = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = []

        def run_pending(sess: Session) -> None:
            todo = list(sess.info.get(_PENDING, ()))
            sess.info[_PENDING] = []
            for fn in todo:
                fn()

        def forget_pending(sess: Session) -> None:
            sess.info[_PENDING] = []

        event.listen(session, "after_commit", run_pending)
        event.listen(session, "after_rollback", forget_pending)
    pending.append(callback)


def enqueue_after_commit(session: Session, ctx: AppContext, name: str, *args: Any) -> None:
    """Send the task once the session's transaction commits; drop it if it rolls back."""
    if name not in TASKS:
        raise KeyError(name)
    after_commit(session, functools.partial(send, ctx, name, *args))
