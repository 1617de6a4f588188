"""Start, watch and stop an inference engine process, and classify how it failed.

Failure classes (the ones the results store knows):

* ``engine_start``: the process exited before its health URL answered;
* ``timeout``: it kept running but the health URL was not ready in time;
* ``oom``: the log shows an out-of-memory error, or the process was killed by SIGKILL that we
  did not send (the Linux OOM killer's signal; ``137`` = 128 + 9 through a shell);
* ``crash``: it died after it was healthy, during the benchmark.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from ..records import FailureClass, FailureRecord

# Messages engines and runtimes print when memory runs out.
OOM_PATTERNS = re.compile(
    r"out of memory|outofmemory|\bOOM\b|oom-kill|std::bad_alloc|MemoryError|"
    r"cannot allocate memory|failed to allocate|unable to allocate|insufficient memory|"
    r"CUDA error: out of memory|killed process \d+",
    re.IGNORECASE,
)
LOG_EXCERPT_BYTES = 4000


class EngineFailure(RuntimeError):
    """The engine did not start, or died; ``failure_class`` says how."""

    def __init__(
        self,
        failure_class: FailureClass,
        message: str,
        *,
        returncode: int | None = None,
        log_excerpt: str | None = None,
    ) -> None:
        super().__init__(f"{failure_class}: {message}")
        self.failure_class: FailureClass = failure_class
        self.message = message
        self.returncode = returncode
        self.log_excerpt = log_excerpt

    def to_record(
        self, suite: str, benchmark: str | None, params: Mapping[str, Any] | None = None
    ) -> FailureRecord:
        return FailureRecord(
            suite=suite,
            benchmark=benchmark,
            failure_class=self.failure_class,
            message=self.message,
            params=dict(params or {}),
            log_excerpt=self.log_excerpt,
        )


def looks_like_oom(returncode: int | None, log_text: str, *, we_killed: bool = False) -> bool:
    """True when the exit looks like running out of memory."""
    if OOM_PATTERNS.search(log_text):
        return True
    sigkilled = returncode in (-signal.SIGKILL, 128 + signal.SIGKILL)
    return sigkilled and not we_killed


def classify_exit(
    returncode: int | None, log_text: str, *, phase: str, we_killed: bool = False
) -> FailureClass:
    """Failure class of a process that ended during ``phase`` ("start" or "run")."""
    if looks_like_oom(returncode, log_text, we_killed=we_killed):
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


@dataclass
class StopResult:
    returncode: int | None
    killed: bool  # needed SIGKILL after the grace period
    seconds: float


class EngineProcess:
    """One engine process in its own process group, its output captured to ``log_path``.

    Use as a context manager (start, wait until healthy, stop on exit) or call the steps.
    """

    def __init__(
        self,
        cmd: Sequence[str],
        *,
        health_url: str,
        log_path: str | os.PathLike[str],
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        startup_timeout: float = 120.0,
        stop_grace: float = 10.0,
        health_interval: float = 0.2,
    ) -> None:
        self.cmd = [str(c) for c in cmd]
        self.health_url = health_url
        self.log_path = Path(log_path)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        self.health_interval = health_interval
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._we_killed = False
        self._stopping = False
        self.healthy_after: float | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Spawn the command in a new session (its own process group)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        env = {**os.environ, **self.env} if self.env is not None else None
        try:
            self.proc = subprocess.Popen(
                self.cmd,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
            )
        except OSError as exc:
            self._close_log()
            raise EngineFailure("engine_start", f"cannot run {self.cmd[0]}: {exc}") from exc

    def wait_healthy(self, timeout: float | None = None) -> float:
        """Poll the health URL until it answers 200; return seconds taken.

        Raises ``EngineFailure`` (``engine_start``/``oom`` if the process exits, ``timeout``
        if it is still not ready after ``timeout`` seconds, in which case it is stopped).
        """
        assert self.proc is not None, "start() first"
        limit = self.startup_timeout if timeout is None else timeout
        t0 = time.monotonic()
        with httpx.Client(timeout=httpx.Timeout(2.0)) as client:
            while True:
                rc = self.proc.poll()
                if rc is not None:
                    log = self.log_tail()
                    self._close_log()
                    cls = classify_exit(rc, log, phase="start")
                    raise EngineFailure(
                        cls,
                        f"engine exited before it was healthy ({describe_returncode(rc)})",
                        returncode=rc,
                        log_excerpt=log,
                    )
                try:
                    if client.get(self.health_url).status_code == 200:
                        self.healthy_after = time.monotonic() - t0
                        return self.healthy_after
                except httpx.HTTPError:
                    pass
                if time.monotonic() - t0 >= limit:
                    self.stop()
                    raise EngineFailure(
                        "timeout",
                        f"health URL {self.health_url} not ready after {limit:g} s",
                        returncode=self.proc.returncode,
                        log_excerpt=self.log_tail(),
                    )
                time.sleep(self.health_interval)

    def poll(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def check(self) -> None:
        """Raise ``EngineFailure`` (``crash`` or ``oom``) if the engine has died."""
        rc = self.poll()
        if self.proc is not None and rc is not None and not self._stopping:
            log = self.log_tail()
            cls = classify_exit(rc, log, phase="run", we_killed=self._we_killed)
            raise EngineFailure(
                cls,
                f"engine died during the benchmark ({describe_returncode(rc)})",
                returncode=rc,
                log_excerpt=log,
            )

    def stop(self, grace: float | None = None) -> StopResult:
        """SIGTERM the whole process group, SIGKILL it after ``grace`` seconds."""
        t0 = time.monotonic()
        if self.proc is None:
            return StopResult(None, False, 0.0)
        grace = self.stop_grace if grace is None else grace
        killed = False
        self._stopping = True
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                killed = True
                self._we_killed = True
                self._signal_group(signal.SIGKILL)
                self.proc.wait()
        # Children that outlived the leader (same group) get the same treatment.
        self._signal_group(signal.SIGKILL)
        self._close_log()
        return StopResult(self.proc.returncode, killed, time.monotonic() - t0)

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    # -- helpers -------------------------------------------------------------------------------
    def log_tail(self, max_bytes: int = LOG_EXCERPT_BYTES) -> str:
        """The end of the engine's log."""
        if self._log is not None:
            self._log.flush()
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - max_bytes))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def __enter__(self) -> EngineProcess:
        self.start()
        try:
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
