"""Wakes long-polling claims in this process when jobs become claimable here.

Other processes' jobs (a Celery worker's fan-out, another API replica's release) are found by
the claim loop's periodic look at the queue; the bell only makes the common local case instant.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class Bell:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def ring(self, n: int | None = None) -> None:
        """Wake the `n` longest-waiting claims (all if None), one per job that became claimable,
        so a new job does not stampede every waiting runner into the database; safe from any thread."""
        with self._lock:
            if n is None:
                waiters, self._waiters = self._waiters, []
            else:
                waiters, self._waiters = self._waiters[:n], self._waiters[n:]
        for loop, fut in waiters:
            with contextlib.suppress(RuntimeError):  # the loop is closed
                loop.call_soon_threadsafe(_resolve, fut)

    async def wait(self, timeout: float) -> bool:
        """True if rung within `timeout` seconds."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._waiters.append((loop, fut))
        try:
            await asyncio.wait_for(fut, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._waiters.remove((loop, fut))


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


bell = Bell()
