"""Background tasks: the Celery app, dispatch after commit, and the embedded in-process worker.

Tasks are named `"<domain>.<verb>"` and take ids only. Their bodies are plain functions
`fn(ctx, *ids)` in each domain's `tasks.py`, so they run the same way under a Celery worker
(production: `BENCH_BROKER_URL=redis://...`) and in the embedded worker thread used when the
broker is `memory://` (the demo and most tests). Either way a task is sent only after the
transaction that made it necessary has committed (`enqueue_after_commit`).

Worker:  celery -A bench_server.tasks worker -Q dispatch,maintenance,github
Beat:    celery -A bench_server.tasks beat
"""

from __future__ import annotations

import importlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

from celery import Celery, Task
from kombu import Queue
from sqlalchemy import event
from sqlalchemy.orm import Session

from bench_server.kit.db import Database
from bench_server.kit.settings import Settings, get_settings

log = logging.getLogger(__name__)

# Declared queues and which task goes where; nothing lands on an implicit queue.
QUEUES = ("dispatch", "maintenance", "github")
TASK_ROUTES: dict[str, str] = {
    "runs.fan_out": "dispatch",
    "jobs.reap_expired": "maintenance",
    "runners.mark_offline": "maintenance",
    "github.post_status": "github",
}
# Where each task's body lives: "module:function", called as fn(ctx, *args).
TASK_BODIES: dict[str, str] = {
    "runs.fan_out": "bench_server.jobs.tasks:fan_out",
    "jobs.reap_expired": "bench_server.jobs.tasks:reap_expired",
    "runners.mark_offline": "bench_server.runners.tasks:mark_offline",
    "github.post_status": "bench_server.github.tasks:post_status",
}
TASK_MODULES = sorted({body.split(":")[0] for body in TASK_BODIES.values()})


class TransientError(Exception):
    """A failure worth retrying later (timeout, 5xx); anything else fails the task at once."""


@dataclass(frozen=True)
class TaskContext:
    db: Database
    settings: Settings


def task_body(name: str) -> Callable[..., Any]:
    module, _, func = TASK_BODIES[name].partition(":")
    fn: Callable[..., Any] = getattr(importlib.import_module(module), func)
    return fn


def retry_delay(settings: Settings, retries: int) -> float:
    """Exponential backoff: base, 2*base, 4*base ... capped at five minutes."""
    return float(min(300.0, settings.github_retry_base_s * (2**retries)))


# --------------------------------------------------------------------------------------
# Celery


def make_celery(settings: Settings) -> Celery:
    app = Celery("bench_server", broker=settings.broker_url, backend=settings.result_backend)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=settings.result_backend is None,
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="dispatch",
        task_create_missing_queues=False,
        task_routes={name: {"queue": q} for name, q in TASK_ROUTES.items()},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        beat_schedule={
            "reap-expired-leases": {
                "task": "jobs.reap_expired",
                "schedule": timedelta(seconds=settings.reaper_interval_s),
            },
            "mark-runners-offline": {
                "task": "runners.mark_offline",
                "schedule": timedelta(
                    seconds=max(settings.reaper_interval_s, settings.runner_offline_after_s / 4)
                ),
            },
        },
    )
    return app


celery_app = make_celery(get_settings())


@lru_cache
def worker_context() -> TaskContext:
    """The worker's database and settings, from the BENCH_* environment."""
    return TaskContext(Database.default(), get_settings())


def _run_in_worker(task: Task, name: str, *args: Any) -> Any:
    ctx = worker_context()
    try:
        return task_body(name)(ctx, *args)
    except TransientError as exc:
        retries = task.request.retries
        if retries >= ctx.settings.github_max_retries:
            log.error("task %s%r gave up after %d retries: %s", name, args, retries, exc)
            return None
        raise task.retry(exc=exc, countdown=retry_delay(ctx.settings, retries), max_retries=None) from exc


def _declare(name: str) -> None:
    def body(self: Task, *args: Any) -> Any:
        return _run_in_worker(self, name, *args)

    body.__name__ = name.replace(".", "_")
    celery_app.task(name=name, bind=True, acks_late=True)(body)


for _name in TASK_BODIES:
    _declare(_name)


@lru_cache
def _sender(broker_url: str, result_backend: str | None) -> Celery:
    # The API may run with other settings than the environment's (tests); send through an app
    # configured for the broker those settings name.
    return make_celery(Settings(broker_url=broker_url, result_backend=result_backend))


def is_embedded(settings: Settings) -> bool:
    return settings.broker_url.startswith("memory://")


# --------------------------------------------------------------------------------------
# Embedded worker: one daemon thread per process, used when the broker is memory://


class LocalWorker:
    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[str, tuple[Any, ...], TaskContext, int]] = queue.Queue()
        self._outstanding = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(self, name: str, args: tuple[Any, ...], ctx: TaskContext, retries: int = 0) -> None:
        with self._cond:
            self._outstanding += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="bench-tasks", daemon=True)
                self._thread.start()
        self._queue.put((name, args, ctx, retries))

    def _done(self) -> None:
        with self._cond:
            self._outstanding -= 1
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            name, args, ctx, retries = self._queue.get()
            try:
                task_body(name)(ctx, *args)
            except TransientError as exc:
                if retries < ctx.settings.github_max_retries:
                    delay = retry_delay(ctx.settings, retries)
                    timer = threading.Timer(delay, self._queue.put, args=[(name, args, ctx, retries + 1)])
                    timer.daemon = True
                    timer.start()
                    continue  # still outstanding until the retry has run
                log.error("task %s%r gave up after %d retries: %s", name, args, retries, exc)
            except Exception:
                log.exception("task %s%r failed", name, args)
            self._done()

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every submitted task (and its retries) has run; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._outstanding == 0, timeout)


local_worker = LocalWorker()


def send(ctx: TaskContext, name: str, *args: Any) -> None:
    """Send a task now (callers outside a transaction, e.g. the CLI after its commit)."""
    if name not in TASK_BODIES:
        raise KeyError(name)
    if is_embedded(ctx.settings):
        local_worker.submit(name, args, ctx)
        return
    try:
        _sender(ctx.settings.broker_url, ctx.settings.result_backend).send_task(
            name, args=list(args), queue=TASK_ROUTES[name]
        )
    except Exception:  # the broker is down: the beat's sweep picks unfinished work up later
        log.exception("could not send task %s%r", name, args)


_PENDING = "bench_pending_tasks"


def enqueue_after_commit(session: Session, ctx: TaskContext, name: str, *args: Any) -> None:
    """Send the task once the session's transaction commits; drop it if it rolls back."""
    if name not in TASK_BODIES:
        raise KeyError(name)
    pending = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = []

        def after_commit(sess: Session) -> None:
            todo = list(sess.info.get(_PENDING, ()))
            sess.info[_PENDING] = []
            for task_ctx, task_name, task_args in todo:
                send(task_ctx, task_name, *task_args)

        def after_rollback(sess: Session) -> None:
            sess.info[_PENDING] = []

        event.listen(session, "after_commit", after_commit)
        event.listen(session, "after_rollback", after_rollback)
    pending.append((ctx, name, args))
