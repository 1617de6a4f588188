"""Commands of a suite run: placeholders, the run's log, and `run_command` (one command in its
own process group, its output streamed to the log, stopped on timeout or cancel)."""

from __future__ import annotations

import contextlib
import re
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..process import EXCERPT_BYTES, spawn_group, stop_group
from .registry import LogFn


class RunLog:
    """The log of one suite run: thread-safe, kept to its last `limit` bytes, echoed if asked."""

    def __init__(self, echo: LogFn | None = None, limit: int = 4 * 1024 * 1024) -> None:
        self._lines: deque[str] = deque()
        self._size = 0
        self._limit = limit
        self._dropped = False
        self._lock = threading.Lock()
        self._echo = echo

    def __call__(self, line: str) -> None:
        line = line.rstrip("\n")
        with self._lock:
            self._lines.append(line)
            self._size += len(line) + 1
            while self._size > self._limit and len(self._lines) > 1:
                self._size -= len(self._lines.popleft()) + 1
                self._dropped = True
        if self._echo is not None:
            self._echo(line)

    def text(self) -> str:
        with self._lock:
            body = "\n".join(self._lines)
            return (
                ("[... earlier log dropped ...]\n" if self._dropped else "") + body + ("\n" if body else "")
            )


_PLACEHOLDER = re.compile(r"(?<!\$)\{([A-Za-z_][A-Za-z0-9_.]*)\}")


def substitute(template: str, values: Mapping[str, Any]) -> str:
    """Replace `{name}` for known names (and `{params.x}`); leave anything else (`${HOME}`) as is."""

    def repl(m: re.Match[str]) -> str:
        key = m.group(1)
        if key in values:
            return str(values[key])
        if key.startswith("params."):
            params = values.get("params") or {}
            sub = key[len("params.") :]
            if sub in params:
                return str(params[sub])
        return m.group(0)

    return _PLACEHOLDER.sub(repl, template)


def command_argv(command: str | list[str], values: Mapping[str, Any]) -> list[str]:
    """A suite command as argv: a string runs under /bin/sh, a list is the argv; placeholders
    substituted either way."""
    if isinstance(command, str):
        return ["/bin/sh", "-c", substitute(command, values)]
    return [substitute(part, values) for part in command]


@dataclass
class CommandResult:
    returncode: int | None
    timed_out: bool
    cancelled: bool
    output_tail: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.cancelled


def _pump(stream: IO[bytes], log: LogFn, tail: deque[str], prefix: str) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        tail.append(line)
        log(prefix + line)
    stream.close()


def tail_text(lines: Iterable[str], limit: int = EXCERPT_BYTES) -> str:
    return "\n".join(lines)[-limit:]


def run_command(
    argv: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    log: LogFn,
    cancel: threading.Event | None = None,
    prefix: str = "  | ",
    kill_grace: float = 5.0,
) -> CommandResult:
    """Run one command in its own process group, streaming its output to the log."""
    start = time.monotonic()
    log(f"$ {' '.join(argv[2:] if argv[:2] == ['/bin/sh', '-c'] else argv)}")
    try:
        proc = spawn_group(argv, cwd=cwd, env=env, stdout=subprocess.PIPE)
    except OSError as exc:
        log(f"cannot start: {exc}")
        return CommandResult(127, False, False, str(exc), 0.0)
    assert proc.stdout is not None
    tail: deque[str] = deque(maxlen=200)
    reader = threading.Thread(target=_pump, args=(proc.stdout, log, tail, prefix), daemon=True)
    reader.start()
    timed_out = cancelled = False
    deadline = start + timeout
    while proc.poll() is None:
        if cancel is not None and cancel.is_set():
            cancelled = True
            break
        if time.monotonic() >= deadline:
            timed_out = True
            break
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.05)
    if timed_out or cancelled:
        why = f"timed out after {timeout:.0f} s" if timed_out else "cancelled"
        log(f"{why}: stopping the process group")
    stop_group(proc, kill_grace)
    reader.join(timeout=5)
    return CommandResult(proc.returncode, timed_out, cancelled, tail_text(tail), time.monotonic() - start)
