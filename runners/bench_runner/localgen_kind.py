"""`kind = "local-gen"` in a suite: prefill and generation tokens/s (llama-bench style).

A thin adapter over `bench_runner.localgen`. Settings sit in `[benchmark.params]` or beside the
common keys (not both), as for `serving`:

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
from typing import Any

from .localgen import GenResult, measure_server
from .records import FailureRecord, ResultRecord
from .serving.suite_kind import ENGINE_FLAVOURS, Settings, engine_url, engine_watch, http_url, run_bounded
from .suite import BenchmarkContext, BenchmarkFailure, BenchmarkSpec, register_kind, run_command

KIND = "local-gen"
LOCALGEN_KEYS = (
    "mode",
    "prompt_len",
    "gen_len",
    "repetitions",
    "base_url",
    "model",
    "engine",
    "eog_tokens",
    "seed",
    "model_path",
    "threads",
)


def localgen_settings(spec: BenchmarkSpec) -> dict[str, Any]:
    """The checked settings as plain values; ValueError naming the field."""
    s = Settings(spec, LOCALGEN_KEYS)
    mode = s.string("mode", "server", choices=("server", "in-process"))
    server_only = [k for k in ("base_url", "model", "engine", "eog_tokens", "seed") if s.has(k)]
    process_only = [k for k in ("model_path", "threads") if s.has(k)]
    if mode == "in-process" and server_only:
        raise ValueError(f'{s.where(server_only[0])}: only for mode = "server"')
    if mode == "server" and process_only:
        raise ValueError(f'{s.where(process_only[0])}: only for mode = "in-process"')
    engine = s.string("engine", "generic", choices=ENGINE_FLAVOURS)
    model = s.string("model", "")
    eog = s.strings("eog_tokens")
    if engine == "reference":
        from .engine.reference import REFERENCE_EOG_TOKENS, REFERENCE_MODEL_ALIAS

        engine = "llama-cpp-python"
        model = model or REFERENCE_MODEL_ALIAS
        eog = eog or list(REFERENCE_EOG_TOKENS)
    prompt_lens = s.integers("prompt_len", 128)
    gen_lens = s.integers("gen_len", 64)
    assert prompt_lens is not None and gen_lens is not None
    if min(gen_lens) < 2:
        raise s.bad("gen_len", "at least 2 (generation speed needs two tokens)")
    return {
        "mode": mode,
        "prompt_lens": prompt_lens,
        "gen_lens": gen_lens,
        "sweep": isinstance(s.values.get("prompt_len"), list) or isinstance(s.values.get("gen_len"), list),
        "repetitions": s.integer("repetitions", 3),
        "base_url": http_url(s, "base_url"),
        "model": model,
        "engine": engine,
        "eog_tokens": eog,
        "seed": s.integer("seed", 0, minimum=0),
        "model_path": s.string("model_path", None),
        "threads": s.integer("threads", None),
    }


def validate_localgen(spec: BenchmarkSpec) -> None:
    localgen_settings(spec)


def _records(ctx: BenchmarkContext, result: GenResult, sweep: bool) -> list[ResultRecord | FailureRecord]:
    params = dict(ctx.params)
    if sweep:
        params.update(prompt_len=result.prompt_len, gen_len=result.gen_len)
    summary = result.summary()
    short = [n for n in summary["generated_tokens"] if n < max(2, result.gen_len // 2)]
    if short:
        rec = ctx.failure(
            "wrong_result",
            f"pp{result.prompt_len}/tg{result.gen_len}: the engine stopped after {short[0]} of "
            f"{result.gen_len} tokens (end of sequence not suppressed?)",
        )
        rec.params = params
        return [rec]
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


def _measure_server(ctx: BenchmarkContext, cfg: dict[str, Any], pp: int, tg: int) -> GenResult:
    url = engine_url(ctx, cfg["base_url"], KIND)
    watch = engine_watch(ctx, url)
    try:
        return run_bounded(
            ctx,
            lambda: measure_server(
                url,
                pp,
                tg,
                repetitions=cfg["repetitions"],
                model=cfg["model"],
                engine=cfg["engine"],
                eog_tokens=cfg["eog_tokens"],
                seed=cfg["seed"],
            ),
            f"local-gen pp{pp} tg{tg}",
        )
    except BenchmarkFailure:
        raise
    except Exception as exc:
        if watch is not None:
            watch.check()  # the engine's own failure class when it died
        raise BenchmarkFailure("crash", f"local-gen pp{pp} tg{tg}: {type(exc).__name__}: {exc}") from exc


def _measure_in_process(ctx: BenchmarkContext, cfg: dict[str, Any], pp: int, tg: int) -> GenResult:
    """`bench-runner local-gen --in-process` in a child process: llama.cpp (and its AMX guard,
    a seccomp filter) never enter the runner, and a crash or the deadline kill only the child."""
    out = ctx.scratch / f"{ctx.benchmark.name}-{ctx.benchmark.params_hash[:8]}-pp{pp}-tg{tg}.json"
    out.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "bench_runner.cli", "local-gen", "--in-process"]
    argv += ["-p", str(pp), "-n", str(tg), "-r", str(cfg["repetitions"]), "--json", str(out)]
    if cfg["model_path"]:
        argv += ["--model-path", str(ctx.checkout / Path(cfg["model_path"]))]
    if cfg["threads"]:
        argv += ["--threads", str(cfg["threads"])]
    res = run_command(
        argv, cwd=ctx.checkout, env=ctx.env, timeout=ctx.remaining(), log=ctx.log, cancel=ctx.stop
    )
    if res.timed_out or res.cancelled:
        raise BenchmarkFailure(
            "timeout", f"local-gen pp{pp} tg{tg} not finished within {ctx.benchmark.timeout:.0f} s"
        )
    if res.returncode != 0:
        from .engine.lifecycle import looks_like_oom

        cls = "oom" if looks_like_oom(res.returncode, res.output_tail) else "crash"
        raise BenchmarkFailure(
            cls, f"local-gen --in-process exited with code {res.returncode}", res.output_tail
        )
    try:
        summary = json.loads(out.read_text())[0]
        result = GenResult("in-process", pp, tg)
        from .localgen import GenSample

        result.samples = [GenSample(**x) for x in summary["samples"]]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise BenchmarkFailure(
            "wrong_result", f"local-gen --in-process wrote no usable summary: {exc}"
        ) from exc
    return result


def run_localgen(ctx: BenchmarkContext) -> list[ResultRecord | FailureRecord]:
    try:
        cfg = localgen_settings(ctx.benchmark)
    except ValueError as exc:
        raise BenchmarkFailure("setup", f"invalid local-gen settings: {exc}") from exc
    measure = _measure_server if cfg["mode"] == "server" else _measure_in_process
    out: list[ResultRecord | FailureRecord] = []
    for pp in cfg["prompt_lens"]:
        for tg in cfg["gen_lens"]:
            if ctx.stop.is_set() or ctx.remaining() <= 0:
                raise BenchmarkFailure("timeout", f"no time left for local-gen pp{pp} tg{tg}")
            out += _records(ctx, measure(ctx, cfg, pp, tg), cfg["sweep"])
    return out


register_kind(KIND, run_localgen, validate_localgen)
