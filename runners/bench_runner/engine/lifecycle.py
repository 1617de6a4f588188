"""Start, watch and stop an inference engine process, and classify how it failed.

Failure classes (decided by `bench_runner.process.classify_exit`, as for every process the
runner starts):

* ``engine_start``: the process exited before it was ready;
* ``timeout``: it kept running but was not ready in time;
* ``oom``: the log shows an out-of-memory error, or the process was killed by SIGKILL that we
  did not send (the Linux OOM killer's signal; ``137`` = 128 + 9 through a shell);
* ``crash``: it died after it was ready, during the benchmark.

Ready means its health URL answers 200, or, for an engine without one, that its port accepts
connections.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import httpx

from ..process import EXCERPT_BYTES, StopResult, classify_exit, describe_returncode, spawn_group, stop_group
from ..records import FailureClass, FailureRecord


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


class EngineProcess:
    """One engine process in its own process group, its output captured to ``log_path``.

    Ready when ``health_url`` answers 200, or without a health URL when ``port`` accepts
    connections on 127.0.0.1. Use as a context manager (start, wait until ready, stop on exit)
    or call the steps.
    """

    def __init__(
        self,
        cmd: Sequence[str],
        *,
        health_url: str | None = None,
        port: int | None = None,
        log_path: str | os.PathLike[str],
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        startup_timeout: float = 120.0,
        stop_grace: float = 10.0,
        health_interval: float = 0.2,
    ) -> None:
        if health_url is None and port is None:
            raise ValueError("an engine needs a health_url or a port to wait for")
        self.cmd = [str(c) for c in cmd]
        self.health_url = health_url
        self.port = port
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
            self.proc = spawn_group(self.cmd, stdout=self._log, env=env, cwd=self.cwd)
        except OSError as exc:
            self._close_log()
            raise EngineFailure("engine_start", f"cannot run {self.cmd[0]}: {exc}") from exc

    @property
    def ready_target(self) -> str:
        """What readiness waits for, for messages."""
        return f"health URL {self.health_url}" if self.health_url else f"port {self.port}"

    def wait_healthy(self, timeout: float | None = None) -> float:
        """Wait until the engine is ready; return seconds taken.

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
                    raise EngineFailure(
                        classify_exit(rc, log, phase="start"),
                        f"engine exited before it was healthy ({describe_returncode(rc)})",
                        returncode=rc,
                        log_excerpt=log,
                    )
                if self._ready(client):
                    self.healthy_after = time.monotonic() - t0
                    return self.healthy_after
                if time.monotonic() - t0 >= limit:
                    self.stop()
                    raise EngineFailure(
                        "timeout",
                        f"{self.ready_target} not ready after {limit:g} s",
                        returncode=self.proc.returncode,
                        log_excerpt=self.log_tail(),
                    )
                time.sleep(self.health_interval)

    def _ready(self, client: httpx.Client) -> bool:
        if self.health_url is not None:
            try:
                return client.get(self.health_url).status_code == 200
            except httpx.HTTPError:
                return False
        assert self.port is not None
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                return True
        except OSError:
            return False

    def poll(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def check(self) -> None:
        """Raise ``EngineFailure`` (``crash`` or ``oom``) if the engine has died."""
        rc = self.poll()
        if self.proc is not None and rc is not None and not self._stopping:
            log = self.log_tail()
            raise EngineFailure(
                classify_exit(rc, log, phase="run", we_killed=self._we_killed),
                f"engine died during the benchmark ({describe_returncode(rc)})",
                returncode=rc,
                log_excerpt=log,
            )

    def stop(self, grace: float | None = None) -> StopResult:
        """SIGTERM the whole process group, SIGKILL it after ``grace`` seconds."""
        if self.proc is None:
            return StopResult(None, False, 0.0)
        self._stopping = True
        result = stop_group(self.proc, self.stop_grace if grace is None else grace)
        self._we_killed = self._we_killed or result.killed
        self._close_log()
        return result

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    # -- helpers -------------------------------------------------------------------------------
    def log_tail(self, max_bytes: int = EXCERPT_BYTES) -> str:
        """The end of the engine's log."""
        if self._log is not None:
            self._log.flush()
        return read_tail(self.log_path, max_bytes)

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


def read_tail(path: Path, max_bytes: int = EXCERPT_BYTES) -> str:
    """The last `max_bytes` of a log file ("" when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - max_bytes))
            return f.read().decode(errors="replace")
    except OSError:
        return ""
