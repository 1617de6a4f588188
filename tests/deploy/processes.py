"""The compose services as plain processes on this machine: each container's environment (the
image's ENV under the service's `environment`) with the image's paths and the stack's host names
mapped to local ones, and process groups that are always stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from tests.deploy.compose import REPO

VENV = Path(sys.prefix)
VENV_BIN = Path(sys.executable).parent
# What a process may inherit from this one: no BENCH_* of the test run, no virtualenv markers.
INHERITED = ("HOME", "LANG", "LC_ALL", "TMPDIR", "USER")


@dataclass
class Localizer:
    """Maps what a container sees to this machine: the image's paths (`paths`, longest first) and
    exact strings such as the API's in-stack address (`strings`)."""

    paths: dict[str, str] = field(default_factory=dict)
    strings: dict[str, str] = field(default_factory=dict)

    def __call__(self, text: str) -> str:
        for image_value, local in self.strings.items():
            text = text.replace(image_value, local)
        for image_path in sorted(self.paths, key=len, reverse=True):
            text = text.replace(image_path, self.paths[image_path])
        return text

    def argv(self, args: list[str]) -> list[str]:
        return [self(arg) for arg in args]


def container_env(
    image_env: Mapping[str, str], service_env: Mapping[str, str], localize: Localizer, **overrides: str
) -> dict[str, str]:
    """The environment a container of the service gets (image ENV, then the service's
    `environment`, as Docker does), localized; the image's PATH puts this virtualenv first,
    PYTHONPATH makes it import this checkout, and HOSTNAME is set as Docker sets it."""
    env = {k: os.environ[k] for k in INHERITED if k in os.environ}
    for key, value in {**image_env, **service_env}.items():
        env[key] = localize(value.replace("$PATH", os.environ.get("PATH", "/usr/bin:/bin")))
    env["PYTHONPATH"] = os.pathsep.join(str(REPO / p) for p in ("", "formats", "runners", "ci"))
    env["HOSTNAME"] = socket.gethostname()
    env.update(overrides)
    return env


class Processes:
    """Long-running services, each in its own process group with its output in a log file."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                args,
                env=dict(env),
                cwd=self.logs,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def alive(self, name: str) -> bool:
        return self.started[name].poll() is None

    def stop(self, *names: str, timeout: float = 45.0) -> dict[str, int]:
        """SIGTERM to each group (as `docker stop` does), SIGKILL past `timeout`; the exit codes."""
        procs = {n: self.started[n] for n in names or list(self.started)[::-1] if n in self.started}
        for proc in procs.values():
            if proc.poll() is None:
                _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes = {}
        for name, proc in procs.items():
            try:
                codes[name] = proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                codes[name] = proc.wait(10)
            _signal_group(proc, signal.SIGKILL)  # whatever the service left behind in its group
            del self.started[name]
        return codes


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


@contextmanager
def processes(logs: Path) -> Iterator[Processes]:
    group = Processes(logs)
    try:
        yield group
    finally:
        group.stop()


def run(
    args: list[str], env: Mapping[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """A one-shot command (a compose one-shot service, a healthcheck, a CLI call), bounded in
    time; its process group is killed if it runs over."""
    proc = subprocess.Popen(
        args,
        env=dict(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"{args[:4]} ran past {timeout} s:\n{out}\n{err}") from None
    return subprocess.CompletedProcess(args, proc.returncode, out, err)
