"""`kind = "local-gen"` in a suite: prefill and generation tokens/s (llama-bench style).

A thin adapter over `localgen.measure`. Its settings (`LocalGenOptions`) sit in
`[benchmark.params]` or beside the common keys (not both), as for `serving`:

| key | default | meaning (`bench-runner local-gen` option) |
| --- | --- | --- |
| `mode` | `"server"` | `server`: streamed requests to the engine, one at a time; |
| | | `in-process`: `llama_cpp.Llama` in a child process (no HTTP) |
| `prompt_len` | 128 | prompt tokens (`-p`); a list measures each |
| `gen_len` | 64 | generated tokens (`-n`); a list measures each |
| `repetitions` | 3 | measured repetitions per pair (`-r`), after one warm-up |
| `base_url` | the suite's engine | server mode: server URL |
| `model`, `engine`, `eog_tokens` | `""`, `generic`, `[]` | server mode: as for `serving` |
| `seed` | 0 | server mode: prompt seed |
| `model_path` | the reference model | in-process mode: GGUF file (relative: to the checkout) |
| `threads` | all CPUs | in-process mode: llama.cpp threads |

Records: `prefill_tok_s` and `generation_tok_s` (tok/s, higher is better) with the per-repetition
samples, with the benchmark's params (plus `prompt_len`/`gen_len` of the pair when either is a
list). A request that fails or an engine that dies -> `crash` (or the engine's class, e.g.
`oom`); an engine that stops generating before half of `gen_len` tokens -> `wrong_result`; out
of time -> `timeout`.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import PrivateAttr, ValidatorFunctionWrapHandler, model_validator

from ..process import classify_exit
from ..records import FailureRecord, ResultRecord
from ..suite import BenchmarkContext, BenchmarkFailure, BenchmarkSpec, register_kind, run_command
from ..suite.kit import EngineFlavour, engine_url, engine_watch, resolve_flavour, run_bounded
from ..suite.options import (
    HttpUrl,
    IntSweep,
    NonNegativeInt,
    PositiveInt,
    Strings,
    Table,
    invalid,
    read_options,
)
from .measure import GenResult, GenSample, measure_server, server_prompt_count

KIND = "local-gen"
SERVER_ONLY = ("base_url", "model", "engine", "eog_tokens", "seed")
IN_PROCESS_ONLY = ("model_path", "threads")


class LocalGenOptions(Table):
    """The settings of a local-gen benchmark (see the table above)."""

    mode: Literal["server", "in-process"] = "server"
    prompt_len: IntSweep = [128]
    gen_len: IntSweep = [64]
    repetitions: PositiveInt = 3
    base_url: HttpUrl | None = None
    model: str = ""
    engine: EngineFlavour = "generic"
    eog_tokens: Strings = []
    seed: NonNegativeInt = 0
    model_path: str | None = None
    threads: PositiveInt | None = None
    # prompt_len or gen_len was given as a list: records carry the pair's lengths
    _sweep: bool = PrivateAttr(False)

    @model_validator(mode="wrap")
    @classmethod
    def _remember_lists(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> LocalGenOptions:
        options: LocalGenOptions = handler(data)
        options._sweep = isinstance(data, dict) and any(
            isinstance(data.get(k), list) for k in ("prompt_len", "gen_len")
        )
        return options

    @model_validator(mode="after")
    def _mode_keys(self) -> LocalGenOptions:
        given = self.model_fields_set
        wrong = [k for k in (IN_PROCESS_ONLY if self.mode == "server" else SERVER_ONLY) if k in given]
        if wrong:
            other = "in-process" if self.mode == "server" else "server"
            raise invalid(wrong[0], f'only for mode = "{other}"')
        if min(self.gen_len) < 2:
            raise invalid(
                "gen_len", f"must be at least 2 (generation speed needs two tokens), got {self.gen_len}"
            )
        return self

    @property
    def sweep(self) -> bool:
        return self._sweep


def localgen_options(spec: BenchmarkSpec) -> LocalGenOptions:
    return read_options(spec, LocalGenOptions)


def validate_localgen(spec: BenchmarkSpec) -> None:
    localgen_options(spec)


def _records(ctx: BenchmarkContext, result: GenResult, sweep: bool) -> list[ResultRecord | FailureRecord]:
    params = dict(ctx.params)
    if sweep:
        params.update(prompt_len=result.prompt_len, gen_len=result.gen_len)
    summary = result.summary()
    short = [n for n in summary["generated_tokens"] if n < max(2, result.gen_len // 2)]
    if short:
        message = (
            f"pp{result.prompt_len}/tg{result.gen_len}: the engine stopped after {short[0]} of "
            f"{result.gen_len} tokens (end of sequence not suppressed?)"
        )
        return [ctx.failure("wrong_result", message, params=params)]
    out: list[ResultRecord | FailureRecord] = []
    for result_rec in result.to_result_records(suite=ctx.suite.name, benchmark=ctx.benchmark.name):
        result_rec.params = dict(params)
        out.append(result_rec)
    pp, tg = summary["prefill_tok_s"], summary["generation_tok_s"]
    ctx.log(
        f"   local-gen {result.mode} pp{result.prompt_len} tg{result.gen_len}: "
        f"prefill {pp or math.nan:.1f} tok/s, generation {tg or math.nan:.1f} tok/s"
    )
    return out


def _measure_server(
    ctx: BenchmarkContext, options: LocalGenOptions, pp: int, tg: int, pair: int
) -> GenResult:
    url = engine_url(ctx, options.base_url, KIND)
    engine, model, eog = resolve_flavour(options.engine, options.model, options.eog_tokens)
    watch = engine_watch(ctx, url)
    try:
        return run_bounded(
            ctx,
            lambda: measure_server(
                url,
                pp,
                tg,
                repetitions=options.repetitions,
                model=model,
                engine=engine,
                eog_tokens=eog,
                seed=options.seed,
                # each pair its own openings: a later pair never starts where an earlier one did
                first_index=pair * server_prompt_count(options.repetitions),
            ),
            f"local-gen pp{pp} tg{tg}",
        )
    except BenchmarkFailure:
        raise
    except Exception as exc:
        if watch is not None:
            watch.check()  # the engine's own failure class when it died
        raise BenchmarkFailure("crash", f"local-gen pp{pp} tg{tg}: {type(exc).__name__}: {exc}") from exc


def _measure_in_process(
    ctx: BenchmarkContext, options: LocalGenOptions, pp: int, tg: int, pair: int
) -> GenResult:
    """`bench-runner local-gen --in-process` in a child process: llama.cpp (and its AMX guard,
    a seccomp filter) never enter the runner, and a crash or the deadline kill only the child.
    (`pair` is not needed: the child resets the model before every prompt.)"""
    out = ctx.scratch / f"{ctx.benchmark.name}-{ctx.benchmark.params_hash[:8]}-pp{pp}-tg{tg}.json"
    out.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "bench_runner.cli", "local-gen", "--in-process"]
    argv += ["-p", str(pp), "-n", str(tg), "-r", str(options.repetitions), "--json", str(out)]
    if options.model_path:
        argv += ["--model-path", str(ctx.checkout / Path(options.model_path))]
    if options.threads:
        argv += ["--threads", str(options.threads)]
    res = run_command(
        argv, cwd=ctx.checkout, env=ctx.env, timeout=ctx.remaining(), log=ctx.log, cancel=ctx.stop
    )
    if res.timed_out or res.cancelled:
        raise BenchmarkFailure(
            "timeout", f"local-gen pp{pp} tg{tg} not finished within {ctx.benchmark.timeout:.0f} s"
        )
    if res.returncode != 0:
        raise BenchmarkFailure(
            classify_exit(res.returncode, res.output_tail),
            f"local-gen --in-process exited with code {res.returncode}",
            res.output_tail,
        )
    try:
        summary = json.loads(out.read_text())[0]
        result = GenResult("in-process", pp, tg)
        result.samples = [GenSample(**x) for x in summary["samples"]]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise BenchmarkFailure(
            "wrong_result", f"local-gen --in-process wrote no usable summary: {exc}"
        ) from exc
    return result


def run_localgen(ctx: BenchmarkContext) -> list[ResultRecord | FailureRecord]:
    try:
        options = localgen_options(ctx.benchmark)
    except ValueError as exc:
        raise BenchmarkFailure("setup", f"invalid local-gen settings: {exc}") from exc
    measure = _measure_server if options.mode == "server" else _measure_in_process
    out: list[ResultRecord | FailureRecord] = []
    pairs = [(pp, tg) for pp in options.prompt_len for tg in options.gen_len]
    for pair, (pp, tg) in enumerate(pairs):
        if ctx.stop.is_set() or ctx.remaining() <= 0:
            raise BenchmarkFailure("timeout", f"no time left for local-gen pp{pp} tg{tg}")
        out += _records(ctx, measure(ctx, options, pp, tg, pair), options.sweep)
    return out


register_kind(KIND, run_localgen, validate_localgen)
