"""`kind = "command"`: any command that writes its records to `$BENCH_RESULTS_FILE`.

Its keys beside the common ones: `command` (required: a string run by /bin/sh, or an argv list)
and `env` (a table of NAME = "value"). The file has the ingest shape
`{"results": [...], "failures": [...]}`; each record's suite, benchmark and params default to
the benchmark's (record params are merged over the benchmark's, for sweeps).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..process import classify_exit
from ..records import FAILURE_CLASSES, FailureRecord, ResultRecord
from .commands import command_argv, run_command
from .options import Command, Env, Table, read_options
from .registry import BenchmarkContext, BenchmarkFailure, Cancelled, Record, register_kind
from .spec import BenchmarkSpec, Suite

KIND = "command"


class CommandOptions(Table):
    """The keys of a command benchmark beside the common ones (its params are free-form)."""

    command: Command
    env: Env = {}


def command_options(spec: BenchmarkSpec) -> CommandOptions:
    return read_options(spec, CommandOptions, with_params=False)


def validate_command(spec: BenchmarkSpec) -> None:
    command_options(spec)


def _records_from_file(path: Path, suite: Suite, spec: BenchmarkSpec) -> list[Record]:
    """Parse a `command` benchmark's results file; raise BenchmarkFailure(wrong_result) if bad."""
    if not path.is_file():
        raise BenchmarkFailure(
            "wrong_result", f"the command exited 0 but wrote no results file ({path.name})"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BenchmarkFailure("wrong_result", f"results file is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BenchmarkFailure("wrong_result", "results file must be an object with results/failures")
    records: list[Record] = []
    for key in ("results", "failures"):
        items = data.get(key, [])
        if not isinstance(items, list):
            raise BenchmarkFailure("wrong_result", f"results file: {key} must be a list")
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise BenchmarkFailure("wrong_result", f"results file: {key}[{i}] must be an object")
            merged = {
                "suite": suite.name,
                "benchmark": spec.name,
                **item,
                "params": {**spec.params, **(item.get("params") or {})},
            }
            try:
                if key == "results":
                    if merged.get("direction") not in ("higher", "lower"):
                        raise ValueError(
                            f"direction must be 'higher' or 'lower', got {merged.get('direction')!r}"
                        )
                    if isinstance(merged.get("value"), bool) or not isinstance(
                        merged.get("value"), int | float
                    ):
                        raise ValueError(f"value must be a number, got {merged.get('value')!r}")
                    merged["value"] = float(merged["value"])
                    records.append(ResultRecord(**merged))
                else:
                    if merged.get("failure_class") not in FAILURE_CLASSES:
                        raise ValueError(f"failure_class must be one of {', '.join(FAILURE_CLASSES)}")
                    records.append(FailureRecord(**merged))
            except (TypeError, ValueError) as exc:
                raise BenchmarkFailure("wrong_result", f"results file: {key}[{i}]: {exc}") from exc
    if not records:
        raise BenchmarkFailure("wrong_result", "results file has no results and no failures")
    return records


def run_command_benchmark(ctx: BenchmarkContext) -> list[Record]:
    """Run `command`; read the records it wrote to `$BENCH_RESULTS_FILE`."""
    options = command_options(ctx.benchmark)
    results_file = ctx.scratch / f"{ctx.benchmark.name}-{ctx.benchmark.params_hash[:8]}-results.json"
    results_file.unlink(missing_ok=True)
    env = {**ctx.env, **options.env, "BENCH_RESULTS_FILE": str(results_file)}
    values = {
        "sha": ctx.sha,
        "checkout": ctx.checkout,
        "results_file": results_file,
        "suite": ctx.suite.name,
        "benchmark": ctx.benchmark.name,
        "params": ctx.benchmark.params,
        "scratch": ctx.scratch,
    }
    if ctx.engine is not None:
        values.update(port=ctx.engine.port, engine_url=ctx.engine.base_url)
    res = run_command(
        command_argv(options.command, values),
        cwd=ctx.checkout,
        env=env,
        timeout=ctx.remaining(),
        log=ctx.log,
        cancel=ctx.stop,
    )
    if res.cancelled:
        raise Cancelled()
    if res.timed_out:
        raise BenchmarkFailure(
            "timeout", f"no result after {ctx.benchmark.timeout:.0f} s (killed)", res.output_tail
        )
    if res.returncode != 0:
        cls = classify_exit(res.returncode, res.output_tail)
        raise BenchmarkFailure(cls, f"command exited with code {res.returncode}", res.output_tail)
    return _records_from_file(results_file, ctx.suite, ctx.benchmark)


register_kind(KIND, run_command_benchmark, validate_command)
