"""The embedded worker: one daemon thread per process that runs tasks when the broker is
`memory://` (the demo, a one-process install, most tests), so no Celery worker or beat is needed.

It honours the Celery worker's retry settings: a TransientError is retried up to
BENCH_TASK_MAX_RETRIES times after BENCH_TASK_RETRY_BASE_S, doubling (no jitter: one process has
no herd to spread). And it is the beat: on a periodic tick of the same thread it runs the periodic
tasks of every application that started them (`start_periodic`, from the app's lifespan).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from bench_server.kit.errors import TransientError
from bench_server.tasks import MAX_RETRY_DELAY_S, Periodic, task_body

if TYPE_CHECKING:
    from bench_server.kit.outbox import AppContext

log = logging.getLogger(__name__)


def retry_delay(base_s: float, retries: int) -> float:
    """Exponential backoff: base, 2*base, 4*base ... capped like Celery's retry_backoff_max."""
    return float(min(MAX_RETRY_DELAY_S, base_s * (2**retries)))


@dataclass(frozen=True)
class _Task:
    name: str
    args: tuple[Any, ...]
    ctx: AppContext
    retries: int = 0


@dataclass
class _Tick:
    ctx: AppContext
    task: str
    every_s: float
    due: float


@dataclass
class _State:
    ready: deque[_Task] = field(default_factory=deque)
    delayed: list[tuple[float, int, _Task]] = field(default_factory=list)  # a heap by due time
    ticks: dict[int, list[_Tick]] = field(default_factory=dict)
    outstanding: int = 0  # submitted tasks not yet done, retries included


class EmbeddedWorker:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._state = _State()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def submit(self, name: str, args: tuple[Any, ...], ctx: AppContext) -> None:
        with self._cond:
            self._state.outstanding += 1
            self._state.ready.append(_Task(name, args, ctx))
            self._wake()

    def start_periodic(self, ctx: AppContext, schedule: Sequence[Periodic]) -> int:
        """Run each periodic task every `every_s` seconds for this app (the first time after
        `first_after_s`, by default one interval)."""
        now = time.monotonic()
        with self._cond:
            handle = next(self._seq)
            self._state.ticks[handle] = [_Tick(ctx, p.task, p.every_s, now + p.first_run_s) for p in schedule]
            self._wake()
        return handle

    def stop_periodic(self, handle: int) -> None:
        with self._cond:
            self._state.ticks.pop(handle, None)

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every submitted task (and its retries) has run; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._state.outstanding == 0, timeout)

    def _wake(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="bench-tasks", daemon=True)
            self._thread.start()
        self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                work = self._next()
            if isinstance(work, _Task):
                self._run(work)
            else:
                self._tick(work)

    def _next(self) -> _Task | _Tick:
        """Under the lock: the next task that is ready, else the next periodic task that is due;
        waits until one is."""
        state = self._state
        while True:
            now = time.monotonic()
            while state.delayed and state.delayed[0][0] <= now:
                state.ready.append(heapq.heappop(state.delayed)[2])
            if state.ready:
                return state.ready.popleft()
            ticks = [t for app_ticks in state.ticks.values() for t in app_ticks]
            for tick in ticks:
                if tick.due <= now:
                    tick.due = now + tick.every_s
                    return tick
            next_due = [t.due for t in ticks] + [d for d, _, _ in state.delayed[:1]]
            self._cond.wait(min(next_due) - now if next_due else None)

    def _run(self, task: _Task) -> None:
        settings = task.ctx.settings
        try:
            task_body(task.name)(task.ctx, *task.args)
        except TransientError as exc:
            if task.retries < settings.task_max_retries:
                due = time.monotonic() + retry_delay(settings.task_retry_base_s, task.retries)
                with self._cond:  # still outstanding until the retry has run
                    heapq.heappush(
                        self._state.delayed, (due, next(self._seq), replace(task, retries=task.retries + 1))
                    )
                return
            log.error("task %s%r gave up after %d retries: %s", task.name, task.args, task.retries, exc)
        except Exception:
            log.exception("task %s%r failed", task.name, task.args)
        with self._cond:
            self._state.outstanding -= 1
            self._cond.notify_all()

    def _tick(self, tick: _Tick) -> None:
        # A periodic task is not retried: its next tick is the retry.
        try:
            task_body(tick.task)(tick.ctx)
        except Exception:
            log.exception("periodic task %s failed", tick.task)


local_worker = EmbeddedWorker()
