"""`kind = "collectives"` in a suite: nccl-tests style bandwidth sweeps (gloo, NCCL or MLX).

A thin adapter over `bench-runner collectives`: the same worker, launcher and records, driven
from the benchmark's settings, which sit in `[benchmark.params]` or beside the common keys
(not both):

| key | default | meaning (`bench-runner collectives` option) |
| --- | --- | --- |
| `collectives` | `["all_reduce"]` | all_reduce, all_gather, reduce_scatter, alltoall, broadcast |
| `min_bytes`, `max_bytes` | 8, `"1M"` | sweep bounds (`-b`, `-e`): bytes, or `"64K"`, `"16M"`, `"1G"` |
| `step_factor`, `step_bytes` | 2, 0 | multiply (`-f`), or with `step_factor = 1` add (`-i`) |
| `dtype` | `"float"` | data type (`-d`) |
| `iters`, `warmup_iters` | 20, 5 | timed and warm-up iterations per size (`-n`, `-w`) |
| `check` | true | count wrong elements (`-c`) |
| `np` | 2 | local ranks (`--np`); not with `hosts` |
| `backend` | `"gloo"` | gloo (CPU), nccl (CUDA), mlx-ring or mlx-jaccl (`mlx.launch`) |
| `hosts`, `hostfile` | none | multi-host `name[@address][:slots],...` or an MPI-style hostfile |
| `launcher` | `"ssh"` | with hosts: ssh or netns |
| `iface`, `master_port`, `remote_python` | | network interface, rendezvous port, remote python |
| `mlx_hostfile` | required for mlx-* | `mlx.launch` JSON hostfile |
| `fault_rank` | none | fault injection: corrupt this rank's data in the correctness pass |

Relative `hostfile` / `mlx_hostfile` paths are taken from the suite file's directory.

Records (as `collectives.records.run_to_records`, under this benchmark's name): per size
`busbw`, `busbw_inplace`, `algbw`, `time_us`, and per collective `avg_busbw`, with params
`{benchmark params..., collective, nranks, dtype, backend, size_bytes}`. A size with
`#wrong > 0` -> `wrong_result` (and no numbers for it); a rank that exits non-zero -> `crash`
(`oom` when it ran out of memory); out of time or stopped -> `timeout` (every rank is killed).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from ..records import FailureRecord, ResultRecord
from ..serving.suite_kind import Settings
from ..suite import BenchmarkContext, BenchmarkFailure, BenchmarkSpec, register_kind, run_command
from .core import COLLECTIVES, CollectiveRun, normalize_dtype, parse_size, size_sweep
from .launcher import HostSpec, RankCommand, _kill, build_rank_commands, free_port, parse_hosts, read_hostfile
from .records import run_to_records
from .worker import JSON_MARKER

KIND = "collectives"
BACKENDS = ("gloo", "nccl", "mlx-ring", "mlx-jaccl")
COLLECTIVES_KEYS = (
    "collectives",
    "min_bytes",
    "max_bytes",
    "step_factor",
    "step_bytes",
    "dtype",
    "iters",
    "warmup_iters",
    "check",
    "np",
    "backend",
    "hosts",
    "hostfile",
    "launcher",
    "iface",
    "master_port",
    "remote_python",
    "mlx_hostfile",
    "fault_rank",
)


def _size(s: Settings, key: str, default: int | str) -> int:
    raw = s.values.get(key, default)
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise s.bad(key, 'a size in bytes: 8, "64K", "16M", "1G"')
    try:
        value = parse_size(raw)
    except ValueError as exc:
        raise ValueError(f"{s.where(key)}: {exc}") from exc
    if value < 0 or (key != "step_bytes" and value == 0):
        raise s.bad(key, "a positive size")
    return value


def _suite_relative(spec_path: Path | None, value: str) -> str:
    path = Path(value)
    if not path.is_absolute() and spec_path is not None:
        path = spec_path.parent / path
    return str(path)


def collectives_settings(spec: BenchmarkSpec) -> dict[str, Any]:
    """The checked settings as plain values; ValueError naming the field."""
    s = Settings(spec, COLLECTIVES_KEYS)
    names = s.strings("collectives", ["all_reduce"])
    backend = s.string("backend", "gloo", choices=BACKENDS)
    allowed = sorted(COLLECTIVES)
    if backend.startswith("mlx-"):
        from .mlx_backend import MLX_COLLECTIVES

        allowed = list(MLX_COLLECTIVES)
    bad = [c for c in names if c not in allowed]
    if bad:
        raise ValueError(f"{s.where('collectives')}: {bad[0]!r} is not one of {', '.join(allowed)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{s.where('collectives')}: each collective at most once")
    min_b, max_b = _size(s, "min_bytes", 8), _size(s, "max_bytes", "1M")
    factor = s.integer("step_factor", 2)
    step = _size(s, "step_bytes", 0)
    try:
        size_sweep(min_b, max_b, factor, step)
    except ValueError as exc:
        key = "max_bytes" if max_b < min_b else "step_factor"
        raise ValueError(f"{s.where(key) if s.has(key) else 'params.' + key}: {exc}") from exc
    dtype = s.string("dtype", "float")
    try:
        normalize_dtype(dtype)
    except ValueError as exc:
        raise ValueError(f"{s.where('dtype')}: {exc}") from exc
    hosts: str | None = s.string("hosts", None)
    hostfile: str | None = s.string("hostfile", None)
    if hosts is not None:
        try:
            parse_hosts(hosts)
        except ValueError as exc:
            raise ValueError(f"{s.where('hosts')}: {exc}") from exc
    if hosts and hostfile:
        raise ValueError(f"{s.where('hostfile')}: give hosts or hostfile, not both")
    if (hosts or hostfile) and s.has("np"):
        raise ValueError(f"{s.where('np')}: the ranks come from hosts/hostfile; drop np")
    mlx_hostfile: str | None = s.string("mlx_hostfile", None)
    if backend.startswith("mlx-"):
        if mlx_hostfile is None:
            raise ValueError(
                f"params.mlx_hostfile: required for backend {backend!r} (see mlx.distributed_config)"
            )
        other = [k for k in ("hosts", "hostfile", "np", "launcher", "iface", "master_port") if s.has(k)]
        if other:
            raise ValueError(
                f"{s.where(other[0])}: not used with backend {backend!r} (mlx.launch reads mlx_hostfile)"
            )
    elif mlx_hostfile is not None:
        raise ValueError(f"{s.where('mlx_hostfile')}: only for the mlx-ring / mlx-jaccl backends")
    launcher = s.string("launcher", "ssh", choices=("ssh", "netns"))
    if s.has("launcher") and not (hosts or hostfile):
        raise ValueError(f"{s.where('launcher')}: only with hosts or hostfile")
    nranks = s.integer("np", 2)
    fault_rank = s.integer("fault_rank", None, minimum=0)
    if (
        fault_rank is not None
        and not (hosts or hostfile or backend.startswith("mlx-"))
        and fault_rank >= nranks
    ):
        raise s.bad("fault_rank", f"a rank below np ({nranks})")
    return {
        "collectives": names,
        "min_bytes": min_b,
        "max_bytes": max_b,
        "step_factor": factor,
        "step_bytes": step,
        "dtype": dtype,
        "iters": s.integer("iters", 20),
        "warmup_iters": s.integer("warmup_iters", 5, minimum=0),
        "check": s.boolean("check", True),
        "np": nranks,
        "backend": backend,
        "hosts": hosts,
        "hostfile": hostfile,
        "launcher": launcher,
        "iface": s.string("iface", None),
        "master_port": s.integer("master_port", None),
        "remote_python": s.string("remote_python", None),
        "mlx_hostfile": mlx_hostfile,
        "fault_rank": fault_rank,
    }


def validate_collectives(spec: BenchmarkSpec) -> None:
    collectives_settings(spec)


def worker_args(cfg: dict[str, Any], timeout: float) -> list[str]:
    args = [*cfg["collectives"], "-b", str(cfg["min_bytes"]), "-e", str(cfg["max_bytes"])]
    args += ["-f", str(cfg["step_factor"]), "-i", str(cfg["step_bytes"]), "-d", cfg["dtype"]]
    args += ["-w", str(cfg["warmup_iters"]), "-n", str(cfg["iters"]), "-c", "1" if cfg["check"] else "0"]
    if cfg["fault_rank"] is not None:
        args += ["--fault-rank", str(cfg["fault_rank"])]
    if cfg["backend"] in ("gloo", "nccl"):
        args += ["--backend", cfg["backend"], "--timeout", f"{max(10.0, timeout):.0f}"]
    return args


def _parse_runs(stdout: str, ctx: BenchmarkContext) -> list[CollectiveRun]:
    for line in stdout.splitlines():
        if line.startswith(JSON_MARKER):
            data = json.loads(line[len(JSON_MARKER) :])
            return [CollectiveRun.from_json(r) for r in data["runs"]]
        ctx.log("  | " + line)
    raise BenchmarkFailure("wrong_result", "rank 0 finished without the results line", stdout[-4000:])


def _rank_failure(rank: int, rc: int, stderr: str) -> BenchmarkFailure:
    from ..engine.lifecycle import describe_returncode, looks_like_oom

    last = next((ln for ln in reversed(stderr.splitlines()) if ln.strip()), "")
    cls = "oom" if looks_like_oom(rc, stderr) else "crash"
    return BenchmarkFailure(
        cls, f"rank {rank} failed ({describe_returncode(rc)}): {last}"[:2000], stderr[-4000:]
    )


def launch_ranks(ctx: BenchmarkContext, commands: list[RankCommand]) -> str:
    """Start every rank (own process group each), wait for all; rank 0's stdout.

    Stops (kills every rank) on the benchmark's deadline or stop event -> `timeout`; a rank
    that exits non-zero stops the others -> `crash` / `oom`.
    """
    rundir = Path(tempfile.mkdtemp(prefix="collectives-", dir=ctx.scratch))
    procs: list[tuple[RankCommand, subprocess.Popen[bytes], Path, Path]] = []
    failed: tuple[int, int] | None = None
    out_of_time = False
    try:
        for cmd in commands:
            out, err = rundir / f"rank{cmd.rank}.out", rundir / f"rank{cmd.rank}.err"
            with out.open("wb") as out_f, err.open("wb") as err_f:
                proc = subprocess.Popen(
                    cmd.argv,
                    stdout=out_f,
                    stderr=err_f,
                    stdin=subprocess.DEVNULL,
                    env={**ctx.env, **cmd.env},
                    cwd=ctx.checkout,
                    start_new_session=True,
                )
            procs.append((cmd, proc, out, err))
        while True:
            codes = [(cmd.rank, proc.poll()) for cmd, proc, _, _ in procs]
            failed = next(((r, rc) for r, rc in codes if rc not in (None, 0)), None)
            if failed is not None or all(rc == 0 for _, rc in codes):
                break
            if ctx.stop.is_set() or ctx.remaining() <= 0:
                out_of_time = True
                break
            time.sleep(0.05)
    finally:
        for _, proc, _, _ in procs:
            if proc.poll() is None:
                _kill(proc)
    stderr = {cmd.rank: err.read_text(errors="replace")[-8000:] for cmd, _, _, err in procs}
    for rank, text in sorted(stderr.items()):
        for line in text.splitlines()[-20:]:
            ctx.log(f"  rank{rank}! {line}")
    if failed is not None:
        raise _rank_failure(failed[0], failed[1], stderr.get(failed[0], ""))
    if out_of_time:
        raise BenchmarkFailure(
            "timeout", f"collectives not finished within {ctx.benchmark.timeout:.0f} s (ranks killed)"
        )
    return next(out.read_text(errors="replace") for cmd, _, out, _ in procs if cmd.rank == 0)


def _run_mlx(ctx: BenchmarkContext, cfg: dict[str, Any]) -> str:
    from .mlx_backend import build_mlx_launch_command

    argv = build_mlx_launch_command(cfg["mlx_hostfile"], cfg["backend"].split("-", 1)[1], worker_args(cfg, 0))
    lines: list[str] = []

    def capture(line: str) -> None:
        raw = line[4:] if line.startswith("  | ") else line
        if raw.startswith(JSON_MARKER):
            lines.append(raw)
        else:
            ctx.log(line)

    res = run_command(
        argv, cwd=ctx.checkout, env=ctx.env, timeout=ctx.remaining(), log=capture, cancel=ctx.stop
    )
    if res.timed_out or res.cancelled:
        raise BenchmarkFailure("timeout", f"mlx.launch not finished within {ctx.benchmark.timeout:.0f} s")
    if res.returncode != 0:
        raise _rank_failure(0, res.returncode if res.returncode is not None else -1, res.output_tail)
    return "\n".join(lines)


def run_collectives(ctx: BenchmarkContext) -> list[ResultRecord | FailureRecord]:
    try:
        cfg = collectives_settings(ctx.benchmark)
    except ValueError as exc:
        raise BenchmarkFailure("setup", f"invalid collectives settings: {exc}") from exc
    for key in ("hostfile", "mlx_hostfile"):  # relative to the suite file
        if cfg[key]:
            cfg[key] = _suite_relative(ctx.suite.path, cfg[key])
    ctx.log(
        f"   collectives {','.join(cfg['collectives'])} over {cfg['backend']}: "
        f"{cfg['min_bytes']}..{cfg['max_bytes']} B, {cfg['iters']} iters"
    )
    if cfg["backend"].startswith("mlx-"):
        stdout = _run_mlx(ctx, cfg)
    else:
        hosts: list[HostSpec]
        if cfg["hostfile"]:
            hosts = read_hostfile(cfg["hostfile"])
        elif cfg["hosts"]:
            hosts = parse_hosts(cfg["hosts"])
        else:
            hosts = [HostSpec("localhost", "127.0.0.1", cfg["np"])]
        commands = build_rank_commands(
            hosts,
            [*worker_args(cfg, ctx.remaining()), "--emit-json"],
            master_port=cfg["master_port"] or free_port(),
            transport=cfg["launcher"] if cfg["hosts"] or cfg["hostfile"] else "local",
            iface=cfg["iface"],
            python=cfg["remote_python"],
        )
        stdout = launch_ranks(ctx, commands)
    runs = _parse_runs(stdout, ctx)
    missing = sorted(set(cfg["collectives"]) - {r.collective for r in runs})
    out: list[ResultRecord | FailureRecord] = []
    for run in runs:
        results, failures = run_to_records(run, suite=ctx.suite.name)
        records: list[ResultRecord | FailureRecord] = [*results, *failures]
        for rec in records:
            rec.benchmark = ctx.benchmark.name
            rec.params = {**ctx.params, **rec.params}
            out.append(rec)
        with contextlib.suppress(ValueError):
            ctx.log(
                f"   {run.collective} x{run.nranks}: avg busbw {run.computed_avg_busbw():.3f} GB/s, "
                f"#wrong {run.total_wrong()}"
            )
    for name in missing:
        rec = ctx.failure("wrong_result", f"{name}: no results from the ranks")
        rec.params = {**ctx.params, "collective": name}
        out.append(rec)
    return out


register_kind(KIND, run_collectives, validate_collectives)
