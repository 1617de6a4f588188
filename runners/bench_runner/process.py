"""Child processes in their own process group, and how their end is classified.

Everything the runner starts (an engine, a build or benchmark command, the ranks of a
collectives run) goes through `spawn_group` and `stop_group`, so that stopping it reaches its
children too, and every exit is classified by the same `classify_exit`:

* ``timeout``: we stopped it because it ran out of time;
* ``oom``: its output shows an out-of-memory error, or it was killed by a SIGKILL that we did
  not send (the Linux OOM killer's signal; ``137`` = 128 + 9 through a shell);
* ``engine_start``: it ended while starting up (an engine before it was healthy);
* ``crash``: it ended any other way while it was running.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, Literal

from .records import FailureClass

# Messages engines, runtimes and allocators print when memory runs out.
OOM_PATTERNS = re.compile(
    r"out of memory|outofmemory|\bOOM\b|oom-kill|std::bad_alloc|MemoryError|"
    r"cannot allocate memory|failed to allocate|unable to allocate|insufficient memory|"
    r"killed process \d+",
    re.IGNORECASE,
)
# How much of a process's output goes into a failure record.
EXCERPT_BYTES = 4096

Phase = Literal["start", "run"]


def looks_like_oom(returncode: int | None, output: str, *, we_killed: bool = False) -> bool:
    """True when an exit looks like running out of memory."""
    if OOM_PATTERNS.search(output):
        return True
    sigkilled = returncode in (-signal.SIGKILL, 128 + signal.SIGKILL)
    return sigkilled and not we_killed


def classify_exit(
    returncode: int | None,
    output: str,
    *,
    phase: Phase = "run",
    timed_out: bool = False,
    we_killed: bool = False,
) -> FailureClass:
    """The failure class of a process (or a Python error, `returncode` None) that ended badly
    during `phase`; `output` is the end of what it printed."""
    if timed_out:
        return "timeout"
    if looks_like_oom(returncode, output, we_killed=we_killed):
        return "oom"
    return "engine_start" if phase == "start" else "crash"


def describe_returncode(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def spawn_group(
    argv: Sequence[str],
    *,
    stdout: int | IO[Any],
    stderr: int | IO[Any] = subprocess.STDOUT,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` as the leader of a new process group (a new session), stdin closed.

    Raises OSError when it cannot be started."""
    return subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdout=stdout,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


@dataclass
class StopResult:
    returncode: int | None
    killed: bool  # it needed SIGKILL after the grace period
    seconds: float


def stop_group(proc: subprocess.Popen[bytes], grace: float) -> StopResult:
    """SIGTERM the process group, SIGKILL it after `grace` seconds; members that outlived the
    leader get SIGKILL either way. Safe to call again."""
    started = time.monotonic()
    killed = False
    if proc.poll() is None:
        signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            killed = True
            signal_group(proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
    signal_group(proc, signal.SIGKILL)
    return StopResult(proc.returncode, killed, time.monotonic() - started)
