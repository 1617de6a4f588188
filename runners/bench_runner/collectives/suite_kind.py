"""`kind = "collectives"` in a suite: nccl-tests style bandwidth sweeps (gloo, NCCL or MLX).

A thin adapter over `bench-runner collectives`: the same worker, launcher and records, driven
from the benchmark's settings (`CollectivesOptions`), which sit in `[benchmark.params]` or
beside the common keys (not both):

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
`{benchmark params..., collective, nranks, dtype, backend, size_bytes}`. A collective with a
`#wrong` above 0 or out-of-bounds values (its ranks exit 7, as nccl-tests) -> one `wrong_result`
carrying the printed rows, and no numbers from it; ranks that exit 7 while rank 0's results show
nothing wrong -> `wrong_result` too; a rank that exits with any other non-zero status -> `crash`
(`oom` when it ran out of memory); out of time or stopped -> `timeout` (every rank is killed).

The posted batch's context says per collective which placements were measured and why any was
not (`collectives.records.run_context`): `{"collectives": {"<benchmark>": {"all_reduce":
{"placements": ["in_place"], "not_measured": {"out_of_place": "..."}}}}}`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from ..process import classify_exit, describe_returncode, free_port
from ..records import FailureRecord, ResultRecord
from ..suite import BenchmarkContext, BenchmarkFailure, BenchmarkSpec, register_kind, run_command
from ..suite.options import NonNegativeInt, PositiveInt, Strings, Table, invalid, read_options
from .core import COLLECTIVES, CollectiveRun, normalize_dtype, parse_size, size_sweep
from .launcher import (
    FINISHED_EXITS,
    HostSpec,
    LaunchError,
    LaunchResult,
    RankCommand,
    build_rank_commands,
    launch,
    parse_hosts,
    read_hostfile,
    read_runs,
)
from .records import run_context, run_to_records
from .worker import JSON_MARKER, WRONG_RESULT_EXIT

KIND = "collectives"


def _bytes(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f'must be a size in bytes: 8, "64K", "16M", "1G", got {value!r}')
    return parse_size(value)


def _dtype(value: str) -> str:
    normalize_dtype(value)  # ValueError naming the known types
    return value


def _hosts(value: str) -> str:
    parse_hosts(value)
    return value


# A size in bytes: 8, or "64K", "16M", "1G" (binary multiples, as nccl-tests)
Bytes = Annotated[int, BeforeValidator(_bytes)]


class CollectivesOptions(Table):
    """The settings of a collectives benchmark (see the table above)."""

    collectives: Strings = ["all_reduce"]
    min_bytes: Annotated[Bytes, Field(ge=1)] = 8
    max_bytes: Annotated[Bytes, Field(ge=1)] = 1 << 20
    step_factor: PositiveInt = 2
    step_bytes: Annotated[Bytes, Field(ge=0)] = 0
    dtype: Annotated[str, AfterValidator(_dtype)] = "float"
    iters: PositiveInt = 20
    warmup_iters: NonNegativeInt = 5
    check: bool = True
    np: PositiveInt = 2
    backend: Literal["gloo", "nccl", "mlx-ring", "mlx-jaccl"] = "gloo"
    hosts: Annotated[str, AfterValidator(_hosts)] | None = None
    hostfile: str | None = None
    launcher: Literal["ssh", "netns"] = "ssh"
    iface: str | None = None
    master_port: PositiveInt | None = None
    remote_python: str | None = None
    mlx_hostfile: str | None = None
    fault_rank: NonNegativeInt | None = None

    @field_validator("collectives")
    @classmethod
    def _once_each(cls, names: list[str]) -> list[str]:
        if len(set(names)) != len(names):
            raise ValueError("each collective at most once")
        return names

    @property
    def mlx(self) -> bool:
        return self.backend.startswith("mlx-")

    @property
    def multi_host(self) -> bool:
        return bool(self.hosts or self.hostfile)

    @model_validator(mode="after")
    def _consistent(self) -> CollectivesOptions:
        given = self.model_fields_set
        if self.mlx:
            from .mlx_backend import MLX_COLLECTIVES

            allowed = list(MLX_COLLECTIVES)
        else:
            allowed = sorted(COLLECTIVES)
        bad = [c for c in self.collectives if c not in allowed]
        if bad:
            raise invalid("collectives", f"{bad[0]!r} is not one of {', '.join(allowed)}")
        try:
            size_sweep(self.min_bytes, self.max_bytes, self.step_factor, self.step_bytes)
        except ValueError as exc:
            raise invalid(
                "max_bytes" if self.max_bytes < self.min_bytes else "step_factor", str(exc)
            ) from exc
        if self.hosts and self.hostfile:
            raise invalid("hostfile", "give hosts or hostfile, not both")
        if self.multi_host and "np" in given:
            raise invalid("np", "the ranks come from hosts/hostfile; drop np")
        if self.mlx:
            if self.mlx_hostfile is None:
                raise invalid(
                    "mlx_hostfile", f"required for backend {self.backend!r} (see mlx.distributed_config)"
                )
            other = [k for k in ("hosts", "hostfile", "np", "launcher", "iface", "master_port") if k in given]
            if other:
                raise invalid(
                    other[0], f"not used with backend {self.backend!r} (mlx.launch reads mlx_hostfile)"
                )
        elif self.mlx_hostfile is not None:
            raise invalid("mlx_hostfile", "only for the mlx-ring / mlx-jaccl backends")
        if "launcher" in given and not self.multi_host:
            raise invalid("launcher", "only with hosts or hostfile")
        if self.fault_rank is not None and not (self.multi_host or self.mlx) and self.fault_rank >= self.np:
            raise invalid("fault_rank", f"must be a rank below np ({self.np}), got {self.fault_rank}")
        return self


def collectives_options(spec: BenchmarkSpec) -> CollectivesOptions:
    return read_options(spec, CollectivesOptions)


def validate_collectives(spec: BenchmarkSpec) -> None:
    collectives_options(spec)


def _suite_relative(spec_path: Path | None, value: str) -> str:
    path = Path(value)
    if not path.is_absolute() and spec_path is not None:
        path = spec_path.parent / path
    return str(path)


def worker_args(options: CollectivesOptions, timeout: float) -> list[str]:
    args = [*options.collectives, "-b", str(options.min_bytes), "-e", str(options.max_bytes)]
    args += ["-f", str(options.step_factor), "-i", str(options.step_bytes), "-d", options.dtype]
    args += ["-w", str(options.warmup_iters), "-n", str(options.iters), "-c", "1" if options.check else "0"]
    if options.fault_rank is not None:
        args += ["--fault-rank", str(options.fault_rank)]
    if options.backend in ("gloo", "nccl"):
        args += ["--backend", options.backend, "--timeout", f"{max(10.0, timeout):.0f}"]
    return args


def _read_runs(ctx: BenchmarkContext, result: LaunchResult) -> list[CollectiveRun]:
    """The runs of finished ranks, rank 0's text in the run log. A failed check (status 7)
    arrives as the runs' `#wrong` and out-of-bounds counts, which `run_to_records` turns into
    the `wrong_result` carrying the rows."""
    try:
        text, runs = read_runs(result)
    except LaunchError as exc:  # status 7 without a wrong result in the JSON
        raise BenchmarkFailure(exc.failure_class, str(exc), exc.log_excerpt) from exc
    for line in text.splitlines():
        ctx.log("  | " + line)
    if not runs:
        raise BenchmarkFailure("wrong_result", "rank 0 finished without the results line", text[-4000:])
    if result.wrong_result:
        ctx.log(f"   ranks exited {WRONG_RESULT_EXIT}: a check failed")
    return runs


def _log_stderr(ctx: BenchmarkContext, stderr: dict[int, str]) -> None:
    for rank, text in sorted(stderr.items()):
        for line in text.splitlines()[-20:]:
            ctx.log(f"  rank{rank}! {line}")


def launch_ranks(ctx: BenchmarkContext, commands: list[RankCommand]) -> LaunchResult:
    """Start every rank, wait for all to finish (exit 0, or 7 when a check failed).

    Stops (kills every rank) on the benchmark's deadline or stop event -> `timeout`; a rank
    that exits with another non-zero status stops the others -> `crash` / `oom`.
    """
    try:
        result = launch(
            commands,
            timeout=ctx.remaining(),
            env=ctx.env,
            cwd=ctx.checkout,
            stop=ctx.stop,
            workdir=ctx.scratch,
        )
    except LaunchError as exc:
        _log_stderr(ctx, exc.stderr)
        if exc.failure_class == "timeout":
            raise BenchmarkFailure(
                "timeout", f"collectives not finished within {ctx.benchmark.timeout:.0f} s (ranks killed)"
            ) from exc
        raise BenchmarkFailure(exc.failure_class, str(exc), exc.log_excerpt) from exc
    _log_stderr(ctx, result.stderr)
    return result


def _run_mlx(ctx: BenchmarkContext, options: CollectivesOptions, mlx_hostfile: str) -> LaunchResult:
    from .mlx_backend import build_mlx_launch_command

    argv = build_mlx_launch_command(mlx_hostfile, options.backend.split("-", 1)[1], worker_args(options, 0))
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
    if res.returncode is None or res.returncode not in FINISHED_EXITS:
        last = next((ln for ln in reversed(res.output_tail.splitlines()) if ln.strip()), "")
        raise BenchmarkFailure(
            classify_exit(res.returncode, res.output_tail),
            f"mlx.launch failed ({describe_returncode(res.returncode)}): {last}"[:2000],
            res.output_tail,
        )
    # the text went to the log line by line; rank 0's stdout here is its JSON line
    return LaunchResult("\n".join(lines), [res.returncode], {}, res.duration)


def run_collectives(ctx: BenchmarkContext) -> list[ResultRecord | FailureRecord]:
    try:
        options = collectives_options(ctx.benchmark)
    except ValueError as exc:
        raise BenchmarkFailure("setup", f"invalid collectives settings: {exc}") from exc
    ctx.log(
        f"   collectives {','.join(options.collectives)} over {options.backend}: "
        f"{options.min_bytes}..{options.max_bytes} B, {options.iters} iters"
    )
    if options.mlx:
        assert options.mlx_hostfile is not None  # the options require it for mlx-*
        result = _run_mlx(ctx, options, _suite_relative(ctx.suite.path, options.mlx_hostfile))
    else:
        hosts: list[HostSpec]
        if options.hostfile:
            hosts = read_hostfile(_suite_relative(ctx.suite.path, options.hostfile))
        elif options.hosts:
            hosts = parse_hosts(options.hosts)
        else:
            hosts = [HostSpec("localhost", "127.0.0.1", options.np)]
        commands = build_rank_commands(
            hosts,
            [*worker_args(options, ctx.remaining()), "--emit-json"],
            master_port=options.master_port or free_port(),
            transport=options.launcher if options.multi_host else "local",
            iface=options.iface,
            python=options.remote_python,
        )
        result = launch_ranks(ctx, commands)
    runs = _read_runs(ctx, result)
    # Which placements each collective measured, and why any was not (torch has no out-of-place
    # all_reduce or broadcast): beside the numbers in the batch, as nccl-tests users expect both.
    ctx.report_context({run.collective: run_context(run) for run in runs})
    missing = sorted(set(options.collectives) - {r.collective for r in runs})
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
        out.append(
            ctx.failure(
                "wrong_result",
                f"{name}: no results from the ranks",
                params={**ctx.params, "collective": name},
            )
        )
    return out


register_kind(KIND, run_collectives, validate_collectives)
