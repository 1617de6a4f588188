"""Event loops for precise timing.

Two sources of error matter when timing at sub-millisecond precision:

* ``epoll_wait`` takes its timeout in whole milliseconds (Python rounds up), so an asyncio timer
  fires up to 1 ms late. ``select()`` takes microseconds.
* waking a process that sleeps in the kernel costs from tens of microseconds on bare metal to
  milliseconds on a busy virtual machine, whose idle vCPU must be rescheduled by the host.

``precise_loop()`` fixes the first; ``busy_loop()`` fixes both by polling without sleeping,
at the cost of one CPU core kept busy. Use it on a core of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import selectors
import time
from typing import Any


class SpinSelector(selectors.DefaultSelector):
    """A selector that polls with a zero timeout instead of sleeping in the kernel."""

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready: list[tuple[selectors.SelectorKey, int]] = super().select(0)
        if ready or timeout is not None and timeout <= 0:
            return ready
        deadline = None if timeout is None else time.perf_counter() + timeout
        poll = super().select
        while True:
            ready = poll(0)
            if ready or (deadline is not None and time.perf_counter() >= deadline):
                return ready


def precise_loop() -> asyncio.AbstractEventLoop:
    """An event loop whose timers fire within microseconds (select() timeouts are in µs)."""
    return asyncio.SelectorEventLoop(selectors.SelectSelector())


def busy_loop() -> asyncio.AbstractEventLoop:
    """An event loop that never sleeps in the kernel (keeps one core busy)."""
    return asyncio.SelectorEventLoop(SpinSelector())


def reduce_timer_slack() -> None:
    """Ask Linux for 1 ns timer slack instead of the default 50 µs (best effort)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(29, 1, 0, 0, 0)  # PR_SET_TIMERSLACK


def run_on(loop_factory: Any, coro: Any) -> Any:
    """Run ``coro`` to completion on a fresh loop from ``loop_factory``, then close it."""
    loop = loop_factory()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
