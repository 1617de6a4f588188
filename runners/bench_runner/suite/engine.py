"""The suite's `[engine]`: started once before the benchmarks with
`bench_runner.engine.EngineProcess`, stopped after them.

`run_suite(..., engine_starter=...)` takes any `EngineStarter`: a callable
`(spec, cwd, env, log, values) -> context manager of EngineHandle` that raises `EngineFailure`
when the engine does not come up; `start_suite_engine` is the default.
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..engine import EngineFailure, EngineProcess, reference_engine_command
from ..process import free_port
from .commands import command_argv, substitute
from .registry import EngineHandle, LogFn
from .spec import EngineSpec

EngineStarter = Callable[
    [EngineSpec, Path, Mapping[str, str], LogFn, Mapping[str, Any]],
    contextlib.AbstractContextManager[EngineHandle],
]

REFERENCE_ENGINE = "{reference_engine}"


def engine_argv(command: str | list[str], values: Mapping[str, Any]) -> list[str]:
    """The engine's argv; `{reference_engine}` becomes `reference_engine_command(port).cmd`
    (the llama.cpp reference server with its AMX guard), shell-quoted in a string command,
    spliced in as arguments when it is a whole element of a list command."""
    text = command if isinstance(command, str) else " ".join(command)
    if REFERENCE_ENGINE not in text:
        return command_argv(command, values)
    try:
        ref = reference_engine_command(int(values["port"])).cmd
    except Exception as exc:  # model package missing, unreadable model override, ...
        raise EngineFailure("setup", f"reference engine unavailable: {exc}") from exc
    if isinstance(command, list):
        command = [x for part in command for x in (ref if part == REFERENCE_ENGINE else [part])]
    return command_argv(command, {**values, "reference_engine": shlex.join(ref)})


def _log_engine_output(engine: EngineProcess, log: LogFn) -> None:
    for line in engine.log_tail(16 * 1024).splitlines()[-100:]:
        log("  engine| " + line)


@contextlib.contextmanager
def start_suite_engine(
    spec: EngineSpec, cwd: Path, env: Mapping[str, str], log: LogFn, values: Mapping[str, Any]
) -> Iterator[EngineHandle]:
    """Start the engine, wait until its health URL answers (or its port accepts), yield its
    handle, stop its process group after. `values` are the placeholders; `values["scratch"]`
    is where its log goes."""
    port = spec.port or free_port()
    vals = {**values, "port": port}
    argv = engine_argv(spec.command, vals)
    log(f"starting engine: {' '.join(argv)}")
    engine = EngineProcess(
        argv,
        health_url=substitute(spec.health_url, vals) if spec.health_url else None,
        port=port,
        log_path=Path(values["scratch"]) / "engine.log",
        env={**env, **spec.env, "PORT": str(port)},
        cwd=cwd,
        startup_timeout=spec.start_timeout,
        stop_grace=spec.stop_timeout,
    )
    try:
        engine.start()
        took = engine.wait_healthy()
    except EngineFailure as exc:
        engine.stop()
        _log_engine_output(engine, log)
        if exc.failure_class != "timeout":
            raise
        # an engine that never gets ready is an engine_start failure (the suite's contract)
        raise EngineFailure(
            "engine_start", exc.message, returncode=exc.returncode, log_excerpt=exc.log_excerpt
        ) from exc
    log(f"engine ready on port {port} after {took:.1f} s")
    try:
        yield EngineHandle(
            base_url=f"http://127.0.0.1:{port}", port=port, process=engine.proc, log_path=engine.log_path
        )
    finally:
        result = engine.stop()
        _log_engine_output(engine, log)
        log(f"engine stopped (exit code {result.returncode})")
