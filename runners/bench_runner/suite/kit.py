"""What the built-in kinds that talk to an engine share (`serving`, `local-gen`): the engine
flavour settings, finding the server, watching the suite's engine, and running a coroutine
under the benchmark's deadline and stop event."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

from ..engine.lifecycle import read_tail
from ..engine.reference import REFERENCE_EOG_TOKENS, REFERENCE_MODEL_ALIAS
from ..process import classify_exit, describe_returncode
from .registry import BenchmarkContext, BenchmarkFailure, EngineHandle

T = TypeVar("T")

# `engine = "..."`: how the kind suppresses end of sequence; `reference` is llama-cpp-python
# with the reference model's alias and end tokens.
EngineFlavour = Literal["generic", "llama-cpp-python", "vllm", "sglang", "llama.cpp", "reference"]


def resolve_flavour(engine: str, model: str, eog_tokens: list[str]) -> tuple[str, str, list[str]]:
    """(engine, model, end-of-generation tokens) to send, with `reference` expanded."""
    if engine != "reference":
        return engine, model, eog_tokens
    return "llama-cpp-python", model or REFERENCE_MODEL_ALIAS, eog_tokens or list(REFERENCE_EOG_TOKENS)


def engine_url(ctx: BenchmarkContext, url: str | None, kind: str) -> str:
    """`base_url` if given, else the suite's engine; a `setup` failure without either."""
    if url:
        return url
    if ctx.engine is not None and ctx.engine.base_url:
        return ctx.engine.base_url
    raise BenchmarkFailure(
        "setup", f"kind {kind!r} needs a server: give the suite an [engine] or the benchmark a base_url"
    )


class EngineWatch:
    """`check()` raises the engine's failure (class from its exit status and log) once it died."""

    def __init__(self, engine: EngineHandle) -> None:
        self.engine = engine

    def check(self) -> None:
        rc = self.engine.returncode
        if self.engine.process is None or rc is None:
            return
        log = read_tail(self.engine.log_path) if self.engine.log_path is not None else ""
        raise BenchmarkFailure(
            classify_exit(rc, log),
            f"engine died during the benchmark ({describe_returncode(rc)})",
            log or None,
        )


def engine_watch(ctx: BenchmarkContext, url: str) -> EngineWatch | None:
    """A watch on the suite's engine, when the benchmark talks to it."""
    if ctx.engine is None or ctx.engine.process is None or url != ctx.engine.base_url:
        return None
    return EngineWatch(ctx.engine)


async def _stopped(stop: threading.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(0.1)


async def bounded(ctx: BenchmarkContext, work: Awaitable[T], what: str) -> T:
    """`work` unless the benchmark's time runs out or it is stopped first (then `timeout`)."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(_stopped(ctx.stop))
    try:
        done, _ = await asyncio.wait(
            {task, stopper}, timeout=ctx.remaining(), return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        stopper.cancel()
        await asyncio.gather(stopper, return_exceptions=True)
    if task in done:
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    why = "stopped" if ctx.stop.is_set() else "not finished"
    raise BenchmarkFailure("timeout", f"{what} {why} within the benchmark's {ctx.benchmark.timeout:.0f} s")


def run_bounded(ctx: BenchmarkContext, make: Callable[[], Awaitable[T]], what: str) -> T:
    """Run a coroutine in this (worker) thread's own event loop, bounded by the benchmark."""

    async def main() -> T:
        return await bounded(ctx, make(), what)

    return asyncio.run(main())
