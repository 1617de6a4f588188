"""Start the ranks of a collectives run: N local processes, or one or more per host.

Every rank is a plain process running `python -m bench_runner.collectives.worker` with the env
rendezvous variables set (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE).
Transports:
- local: subprocesses on this machine (the default, `--np N`);
- ssh: `ssh HOST env VAR=... python3 -m ...` per rank (hosts from `--hosts` or a hostfile);
- netns: `ip netns exec NS env VAR=... python -m ...` per rank (Linux network namespaces standing
  in for hosts, used by the tests);
and `build_torchrun_commands` gives the torchrun form (one `torchrun --nnodes ...` per host).
Command building is pure and tested; only `launch` starts processes.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..process import classify_exit, describe_returncode, spawn_group, stop_group
from ..process import free_port as free_port  # re-exported: the CLI and overhead.py start ranks with it
from .core import CollectiveRun
from .worker import JSON_MARKER, WRONG_RESULT_EXIT, any_wrong

WORKER_MODULE = "bench_runner.collectives.worker"
# How a rank that finished its sweeps exits: 0, or WRONG_RESULT_EXIT when a check failed.
FINISHED_EXITS = (0, WRONG_RESULT_EXIT)


class LaunchError(RuntimeError):
    """A rank failed (`crash`, or `oom`), the run ran out of time (`timeout`), or the ranks said
    a check failed but rank 0 printed no wrong result (`wrong_result`); `stderr` holds the end
    of every rank's stderr."""

    def __init__(
        self, message: str, failure_class: str, log_excerpt: str = "", stderr: dict[int, str] | None = None
    ) -> None:
        super().__init__(message)
        self.failure_class = failure_class
        self.log_excerpt = log_excerpt
        self.stderr = stderr or {}


@dataclass(frozen=True)
class HostSpec:
    name: str  # ssh destination, or network namespace name
    addr: str | None = None  # address other ranks reach this host at (default: name)
    slots: int = 1  # ranks on this host

    @property
    def address(self) -> str:
        return self.addr or self.name


_HOST_RE = re.compile(r"^(?P<name>[^@:\s]+)(?:@(?P<addr>[^:\s]+))?(?::(?P<slots>\d+))?$")


def parse_hosts(text: str) -> list[HostSpec]:
    """`a,b:2,ns0@10.1.0.1:1` -> hosts; `name[@address][:slots]`."""
    hosts = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        m = _HOST_RE.match(item)
        if not m:
            raise ValueError(f"bad host {item!r} (expected name[@address][:slots])")
        hosts.append(HostSpec(m["name"], m["addr"], int(m["slots"] or 1)))
    if not hosts:
        raise ValueError("empty host list")
    return hosts


def read_hostfile(path: str | Path) -> list[HostSpec]:
    """MPI-style hostfile: one `host [slots=N]` (or `host:N`) per line, # comments."""
    hosts = []
    for raw in Path(path).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        slots = 1
        for extra in parts[1:]:
            if extra.startswith("slots="):
                slots = int(extra.split("=", 1)[1])
        spec = parse_hosts(parts[0])[0]
        hosts.append(HostSpec(spec.name, spec.addr, slots if len(parts) > 1 else spec.slots))
    return hosts


@dataclass
class RankCommand:
    rank: int
    host: HostSpec
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # extra env for local transport


def rank_env(
    rank: int,
    local_rank: int,
    local_world: int,
    world: int,
    master_addr: str,
    master_port: int,
    iface: str | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    env = {
        "MASTER_ADDR": master_addr,
        "MASTER_PORT": str(master_port),
        "RANK": str(rank),
        "WORLD_SIZE": str(world),
        "LOCAL_RANK": str(local_rank),
        "LOCAL_WORLD_SIZE": str(local_world),
    }
    if iface:
        env["GLOO_SOCKET_IFNAME"] = iface
        env["NCCL_SOCKET_IFNAME"] = iface
    env.update(extra or {})
    return env


def build_rank_commands(
    hosts: list[HostSpec],
    worker_args: list[str],
    *,
    master_port: int,
    transport: str = "local",
    master_addr: str | None = None,
    python: str | None = None,
    iface: str | None = None,
    extra_env: dict[str, str] | None = None,
    module: str = WORKER_MODULE,
) -> list[RankCommand]:
    """One command per rank, ranks numbered host by host."""
    if transport not in ("local", "ssh", "netns"):
        raise ValueError(f"unknown transport {transport!r}")
    world = sum(h.slots for h in hosts)
    master = master_addr or hosts[0].address
    py = python or (sys.executable if transport != "ssh" else "python3")
    cmds = []
    rank = 0
    for host in hosts:
        for local in range(host.slots):
            env = rank_env(rank, local, host.slots, world, master, master_port, iface, extra_env)
            payload = [py, "-m", module, *worker_args]
            if transport == "local":
                cmds.append(RankCommand(rank, host, payload, env))
            elif transport == "netns":
                argv = [
                    "ip",
                    "netns",
                    "exec",
                    host.name,
                    "env",
                    *[f"{k}={v}" for k, v in env.items()],
                    *payload,
                ]
                cmds.append(RankCommand(rank, host, argv))
            else:
                remote = shlex.join(["env", *[f"{k}={v}" for k, v in env.items()], *payload])
                cmds.append(RankCommand(rank, host, ["ssh", "-o", "BatchMode=yes", host.name, remote]))
            rank += 1
    return cmds


def build_torchrun_commands(
    hosts: list[HostSpec],
    worker_args: list[str],
    *,
    master_port: int,
    master_addr: str | None = None,
    ssh: bool = True,
    torchrun: str = "torchrun",
    module: str = WORKER_MODULE,
) -> list[list[str]]:
    """The torchrun form: one launcher per host (all hosts must have the same slot count)."""
    slots = {h.slots for h in hosts}
    if len(slots) != 1:
        raise ValueError("torchrun needs the same number of ranks on every host")
    nproc = slots.pop()
    master = master_addr or hosts[0].address
    out = []
    for node_rank, host in enumerate(hosts):
        cmd = [
            torchrun,
            f"--nnodes={len(hosts)}",
            f"--nproc-per-node={nproc}",
            f"--node-rank={node_rank}",
            f"--master-addr={master}",
            f"--master-port={master_port}",
            "-m",
            module,
            *worker_args,
        ]
        out.append(["ssh", "-o", "BatchMode=yes", host.name, shlex.join(cmd)] if ssh else cmd)
    return out


@dataclass
class LaunchResult:
    """Every rank finished: each exited 0 or WRONG_RESULT_EXIT."""

    rank0_stdout: str
    returncodes: list[int]
    stderr: dict[int, str]
    seconds: float

    @property
    def wrong_result(self) -> bool:
        """Whether a rank reported a failed check by its exit status (nccl-tests' 7)."""
        return WRONG_RESULT_EXIT in self.returncodes


def launch(
    commands: list[RankCommand],
    *,
    timeout: float = 300.0,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    stop: threading.Event | None = None,
    workdir: str | os.PathLike[str] | None = None,
) -> LaunchResult:
    """Start every rank (each in its own process group), wait for all.

    A rank that exits WRONG_RESULT_EXIT has finished (a check failed; see `read_runs`); one
    that exits with any other non-zero status stops the others -> LaunchError `crash` (or
    `oom`); not done within `timeout` seconds, or `stop` set -> LaunchError `timeout`. Ranks
    get `env` (default: this process's environment) plus their own variables; their output is
    kept in a temporary directory under `workdir`.
    """
    t0 = time.monotonic()
    deadline = t0 + timeout
    base_env = os.environ if env is None else env
    with tempfile.TemporaryDirectory(prefix="bench-collectives-", dir=workdir) as tmp:
        procs: list[tuple[RankCommand, subprocess.Popen[bytes], Path, Path]] = []
        failed: tuple[int, int] | None = None
        out_of_time = False
        try:
            for cmd in commands:
                out_path, err_path = Path(tmp) / f"rank{cmd.rank}.out", Path(tmp) / f"rank{cmd.rank}.err"
                with open(out_path, "wb") as out_f, open(err_path, "wb") as err_f:
                    proc = spawn_group(
                        cmd.argv, stdout=out_f, stderr=err_f, env={**base_env, **cmd.env}, cwd=cwd
                    )
                procs.append((cmd, proc, out_path, err_path))
            while True:
                codes = [(cmd.rank, proc.poll()) for cmd, proc, _, _ in procs]
                failed = next(
                    ((r, rc) for r, rc in codes if rc is not None and rc not in FINISHED_EXITS), None
                )
                if failed is not None or all(rc in FINISHED_EXITS for _, rc in codes):
                    break
                if (stop is not None and stop.is_set()) or time.monotonic() >= deadline:
                    out_of_time = True
                    break
                time.sleep(0.05)
        finally:
            for _, proc, _, _ in procs:
                stop_group(proc, grace=5.0)
        stderr = {cmd.rank: err.read_text(errors="replace")[-8000:] for cmd, _, _, err in procs}
        rank0 = next((out.read_text(errors="replace") for cmd, _, out, _ in procs if cmd.rank == 0), "")
        rcs = [proc.returncode for _, proc, _, _ in procs]
    if failed is not None:
        rank, rc = failed
        text = stderr.get(rank, "")
        last = next((ln for ln in reversed(text.splitlines()) if ln.strip()), "")
        raise LaunchError(
            f"rank {rank} failed ({describe_returncode(rc)}): {last}"[:2000],
            classify_exit(rc, text),
            text[-4000:],
            stderr,
        )
    if out_of_time:
        why = "stopped" if stop is not None and stop.is_set() else f"timed out after {timeout:.0f} s"
        raise LaunchError(f"collectives run {why}", "timeout", stderr.get(0, "")[-2000:], stderr)
    return LaunchResult(rank0, rcs, stderr, time.monotonic() - t0)


def read_runs(result: LaunchResult) -> tuple[str, list[CollectiveRun]]:
    """Rank 0's text and runs, checked against the exit statuses: ranks that exited
    WRONG_RESULT_EXIT while rank 0's JSON shows no wrong result -> LaunchError `wrong_result`
    (a failed check is never taken for a good run)."""
    text, runs = split_output(result.rank0_stdout)
    if result.wrong_result and not any_wrong(runs):
        count = result.returncodes.count(WRONG_RESULT_EXIT)
        raise LaunchError(
            f"{count} rank(s) exited {WRONG_RESULT_EXIT} (a check failed) but rank 0 printed no wrong result",
            "wrong_result",
            result.rank0_stdout[-4000:],
            result.stderr,
        )
    return text, runs


def split_output(stdout: str) -> tuple[str, list[CollectiveRun]]:
    """Rank 0's stdout -> (the nccl-tests style text, the runs from the JSON line)."""
    text_lines, runs = [], []
    for line in stdout.splitlines(keepends=True):
        if line.startswith(JSON_MARKER):
            data = json.loads(line[len(JSON_MARKER) :])
            runs = [CollectiveRun.from_json(r) for r in data["runs"]]
        else:
            text_lines.append(line)
    return "".join(text_lines), runs


def run_local(
    worker_args: list[str],
    *,
    nprocs: int = 2,
    timeout: float = 300.0,
    extra_env: dict[str, str] | None = None,
) -> tuple[str, list[CollectiveRun]]:
    """Run `nprocs` ranks on this machine over 127.0.0.1; returns (text, runs) (`read_runs`)."""
    hosts = [HostSpec("localhost", "127.0.0.1", nprocs)]
    cmds = build_rank_commands(
        hosts, [*worker_args, "--emit-json"], master_port=free_port(), extra_env=extra_env
    )
    return read_runs(launch(cmds, timeout=timeout))


def run_hosts(
    hosts: list[HostSpec],
    worker_args: list[str],
    *,
    transport: str,
    master_port: int,
    timeout: float = 300.0,
    iface: str | None = None,
    python: str | None = None,
) -> tuple[str, list[CollectiveRun]]:
    cmds = build_rank_commands(
        hosts,
        [*worker_args, "--emit-json"],
        master_port=master_port,
        transport=transport,
        iface=iface,
        python=python,
    )
    return read_runs(launch(cmds, timeout=timeout))
