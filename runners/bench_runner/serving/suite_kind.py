"""`kind = "serving"` in a suite: the serving load generator against the suite's engine.

A thin adapter: it checks the benchmark's settings, builds a `BenchConfig` (the same fields
as `bench-runner serve-bench`), runs it under the benchmark's deadline and stop event, and
turns the result into records with `metrics.to_result_records`. Settings may sit in
`[benchmark.params]` (they are then part of the benchmark's identity: the workload) or beside
the common keys (how to reach and drive the engine); a key may not be in both.

| key | default | meaning (serve-bench option) |
| --- | --- | --- |
| `base_url` | the suite's engine | server URL (`--base-url`) |
| `endpoint` | `"completions"` | `completions` or `chat` |
| `model` | `""` | model name sent in requests |
| `engine` | `"generic"` | EOS handling: llama-cpp-python, vllm, sglang, llama.cpp, generic, or |
| | | `reference`: llama-cpp-python with the reference model's alias and end tokens |
| `eog_tokens` | `[]` | extra end-of-generation tokens to suppress |
| `isl`, `osl` | 128, 64 | input and output tokens per request |
| `num_prompts` | 100 | measured requests (per sweep point) |
| `warmups` | one per user | warm-up requests, not measured |
| `concurrency` | 1 | closed-loop users; a list is a sweep |
| `request_rate` | closed loop | open loop requests/s (`"inf"`: all at once); a list is a sweep |
| `burstiness`, `max_concurrency` | 1.0, none | open loop: gamma shape, cap on requests in flight |
| `seed` | 0 | workload and arrival seed |
| `goodput` | none | SLOs in ms: `{ ttft = 500, tpot = 50 }` or `["ttft:500"]` |
| `percentiles` | `[50, 90, 95, 99]` | latency percentiles |
| `accelerators` | 1 | for the per-accelerator throughputs |
| `temperature` | 0.0 | sampling temperature |
| `tokenizer` | `"server"` | `server`: exact prompt lengths through the engine's tokenizer; `none` |
| `include_usage` | true | ask for stream usage |
| `request_timeout` | 600 (capped by the benchmark's time left) | seconds per request |
| `extra_body` | `{}` | merged into every request body |
| `headers` | `{}` | extra HTTP headers |
| `max_failed_fraction` | 0.0 | failed requests above this fraction add a `crash` failure |

Outcomes: the engine dying during the run -> its class (`crash`, or `oom` from its exit or
log); every request failed -> `crash` (with the first error); more failed requests than
`max_failed_fraction` -> the numbers of the completed ones plus a `crash` failure; not done
by the benchmark's timeout (or stopped) -> `timeout`; a workload the tokenizer cannot build
(e.g. `isl` too small) -> `setup`. Every run also reports `failed_requests`.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..records import FailureRecord, ResultRecord
from ..suite import BenchmarkContext, BenchmarkFailure, BenchmarkSpec, EngineHandle, register_kind
from .loadgen import BenchConfig, BenchmarkResult, arun_benchmark, arun_sweep
from .metrics import parse_goodput, to_result_records
from .workload import WorkloadError

T = TypeVar("T")

KIND = "serving"
ENGINE_FLAVOURS = ("generic", "llama-cpp-python", "vllm", "sglang", "llama.cpp", "reference")
_MISSING: Any = object()


# --------------------------------------------------------------------------------------
# Settings: params (identity) and kind-specific keys, validated with the field's name


class Settings:
    """A benchmark's settings for a kind: `params` and the keys beside the common ones.

    Every accessor raises ValueError naming the field (`params.isl: ...` or `base_url: ...`);
    `parse_suite` prefixes the file and the benchmark.
    """

    def __init__(self, spec: BenchmarkSpec, allowed: Sequence[str]) -> None:
        self.spec = spec
        options = dict(spec.options)
        both = sorted(set(options) & set(spec.params))
        if both:
            raise ValueError(f"{both[0]}: given both beside the common keys and in params; keep one")
        self.values: dict[str, Any] = {**options, **spec.params}
        for key in sorted(self.values):
            if key not in allowed:
                raise ValueError(
                    f"{self.where(key)}: unknown setting for kind {spec.kind!r} "
                    f"(allowed: {', '.join(sorted(allowed))})"
                )

    def where(self, key: str) -> str:
        return f"params.{key}" if key in self.spec.params else key

    def has(self, key: str) -> bool:
        return key in self.values

    def bad(self, key: str, expected: str) -> ValueError:
        return ValueError(f"{self.where(key)}: must be {expected}, got {self.values.get(key)!r}")

    def integer(self, key: str, default: Any = _MISSING, *, minimum: int = 1) -> Any:
        if key not in self.values:
            if default is _MISSING:
                raise ValueError(f"params.{key}: required")
            return default
        v = self.values[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise self.bad(key, f"an integer >= {minimum}")
        return v

    def number(self, key: str, default: Any = _MISSING, *, minimum: float = 0.0, strict: bool = True) -> Any:
        if key not in self.values:
            if default is _MISSING:
                raise ValueError(f"params.{key}: required")
            return default
        v = self.values[key]
        if (
            isinstance(v, bool)
            or not isinstance(v, int | float)
            or not math.isfinite(v)
            or (v <= minimum if strict else v < minimum)
        ):
            raise self.bad(key, f"a number {'>' if strict else '>='} {minimum:g}")
        return float(v)

    def string(self, key: str, default: Any = _MISSING, *, choices: Sequence[str] | None = None) -> Any:
        if key not in self.values:
            if default is _MISSING:
                raise ValueError(f"params.{key}: required")
            return default
        v = self.values[key]
        if not isinstance(v, str) or (choices is not None and v not in choices):
            raise self.bad(key, f"one of {', '.join(choices)}" if choices else "a string")
        return v

    def boolean(self, key: str, default: bool) -> bool:
        v = self.values.get(key, default)
        if not isinstance(v, bool):
            raise self.bad(key, "true or false")
        return v

    def strings(self, key: str, default: Sequence[str] = ()) -> list[str]:
        v = self.values.get(key, list(default))
        if isinstance(v, str):
            v = [v]
        if (
            not isinstance(v, list)
            or (not v and key in self.values)
            or not all(isinstance(x, str) for x in v)
        ):
            raise self.bad(key, "a string or a non-empty list of strings")
        return list(v)

    def table(self, key: str) -> dict[str, Any]:
        v = self.values.get(key, {})
        if not isinstance(v, dict):
            raise self.bad(key, "a table")
        return dict(v)

    def integers(self, key: str, default: int | None, *, minimum: int = 1) -> list[int] | None:
        """An integer or a non-empty list of them (a sweep)."""
        if key not in self.values:
            return None if default is None else [default]
        v = self.values[key]
        items = v if isinstance(v, list) else [v]
        if not items or any(isinstance(x, bool) or not isinstance(x, int) or x < minimum for x in items):
            raise self.bad(key, f"an integer >= {minimum} or a non-empty list of them")
        return list(items)


def http_url(settings: Settings, key: str) -> str | None:
    url = settings.string(key, None)
    if url is not None and not re.match(r"^https?://[^/\s]+", url):
        raise settings.bad(key, "an http(s) URL")
    return url


def engine_url(ctx: BenchmarkContext, url: str | None, kind: str) -> str:
    """`base_url` if given, else the suite's engine; a `setup` failure without either."""
    if url:
        return url
    if ctx.engine is not None and ctx.engine.base_url:
        return ctx.engine.base_url
    raise BenchmarkFailure(
        "setup", f"kind {kind!r} needs a server: give the suite an [engine] or the benchmark a base_url"
    )


# --------------------------------------------------------------------------------------
# Running under the benchmark's deadline, stop event and engine


class EngineWatch:
    """`check()` raises the engine's failure (class from its exit status and log) once it died."""

    def __init__(self, engine: EngineHandle, log_path: Path | None = None) -> None:
        self.engine = engine
        self.log_path = log_path

    def check(self) -> None:
        rc = self.engine.returncode
        if self.engine.process is None or rc is None:
            return
        from ..engine.lifecycle import LOG_EXCERPT_BYTES, classify_exit, describe_returncode

        log = ""
        if self.log_path is not None and self.log_path.is_file():
            with self.log_path.open("rb") as f:
                size = f.seek(0, 2)
                f.seek(max(0, size - LOG_EXCERPT_BYTES))
                log = f.read().decode(errors="replace")
        cls = classify_exit(rc, log, phase="run")
        raise BenchmarkFailure(
            cls, f"engine died during the benchmark ({describe_returncode(rc)})", log or None
        )


def engine_watch(ctx: BenchmarkContext, url: str) -> EngineWatch | None:
    """A watch on the suite's engine, when the benchmark talks to it."""
    if ctx.engine is None or ctx.engine.process is None or url != ctx.engine.base_url:
        return None
    return EngineWatch(ctx.engine, ctx.scratch / "engine.log")


async def _stopped(stop: threading.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(0.1)


async def bounded(ctx: BenchmarkContext, work: Awaitable[T], what: str) -> T:
    """`work` unless the benchmark's time runs out or it is stopped first (then `timeout`)."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(_stopped(ctx.stop))
    try:
        done, _ = await asyncio.wait(
            {task, stopper}, timeout=ctx.remaining(), return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        stopper.cancel()
        await asyncio.gather(stopper, return_exceptions=True)
    if task in done:
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    why = "stopped" if ctx.stop.is_set() else "not finished"
    raise BenchmarkFailure("timeout", f"{what} {why} within the benchmark's {ctx.benchmark.timeout:.0f} s")


def run_bounded(ctx: BenchmarkContext, make: Callable[[], Awaitable[T]], what: str) -> T:
    """Run a coroutine in this (worker) thread's own event loop, bounded by the benchmark."""

    async def main() -> T:
        return await bounded(ctx, make(), what)

    return asyncio.run(main())


# --------------------------------------------------------------------------------------
# The serving kind

SERVING_KEYS = (
    "base_url",
    "endpoint",
    "model",
    "engine",
    "eog_tokens",
    "isl",
    "osl",
    "num_prompts",
    "warmups",
    "concurrency",
    "request_rate",
    "burstiness",
    "max_concurrency",
    "seed",
    "goodput",
    "percentiles",
    "accelerators",
    "temperature",
    "tokenizer",
    "include_usage",
    "request_timeout",
    "extra_body",
    "headers",
    "max_failed_fraction",
)


def _rates(s: Settings) -> list[float] | None:
    if not s.has("request_rate"):
        return None
    raw = s.values["request_rate"]
    items = raw if isinstance(raw, list) else [raw]
    out: list[float] = []
    for x in items:
        if x == "inf":
            out.append(math.inf)
        elif isinstance(x, int | float) and not isinstance(x, bool) and x > 0 and not math.isnan(x):
            out.append(float(x))
        else:
            raise s.bad("request_rate", 'a number > 0, "inf", or a non-empty list of them')
    if not out:
        raise s.bad("request_rate", 'a number > 0, "inf", or a non-empty list of them')
    return out


def serving_config(spec: BenchmarkSpec) -> tuple[BenchConfig, list[int] | None, list[float] | None]:
    """(config without base_url, concurrency sweep, rate sweep); ValueError naming the field."""
    s = Settings(spec, SERVING_KEYS)
    base_url = http_url(s, "base_url")
    engine = s.string("engine", "generic", choices=ENGINE_FLAVOURS)
    model = s.string("model", "")
    eog = s.strings("eog_tokens")
    if engine == "reference":
        from ..engine.reference import REFERENCE_EOG_TOKENS, REFERENCE_MODEL_ALIAS

        engine, model, eog = (
            "llama-cpp-python",
            model or REFERENCE_MODEL_ALIAS,
            eog or list(REFERENCE_EOG_TOKENS),
        )
    concurrency = s.integers("concurrency", None)
    rates = _rates(s)
    if concurrency is not None and rates is not None:
        raise ValueError(
            f"{s.where('concurrency')}: closed loop (concurrency) or open loop (request_rate), not both; "
            "cap an open loop with max_concurrency"
        )
    if rates is None and s.has("max_concurrency"):
        raise ValueError(f"{s.where('max_concurrency')}: only with request_rate (open loop)")
    if s.has("burstiness") and rates is None:
        raise ValueError(f"{s.where('burstiness')}: only with request_rate (open loop)")
    try:
        goodput = parse_goodput(_goodput_raw(s))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{s.where('goodput')}: {exc}") from exc
    percentiles = s.values.get("percentiles", [50, 90, 95, 99])
    if (
        not isinstance(percentiles, list)
        or not percentiles
        or any(isinstance(p, bool) or not isinstance(p, int | float) or not 0 < p <= 100 for p in percentiles)
    ):
        raise s.bad("percentiles", "a non-empty list of numbers in (0, 100]")
    tokenizer = s.string("tokenizer", "server", choices=("server", "none"))
    headers = s.table("headers")
    if not all(isinstance(v, str) for v in headers.values()):
        raise s.bad("headers", 'a table of NAME = "value"')
    max_failed = s.number("max_failed_fraction", 0.0, minimum=0.0, strict=False)
    if max_failed > 1:
        raise s.bad("max_failed_fraction", "a fraction between 0 and 1")
    config = BenchConfig(
        base_url=base_url or "http://unset",
        model=model,
        endpoint=s.string("endpoint", "completions", choices=("completions", "chat")),
        engine=engine,
        input_len=s.integer("isl", 128),
        output_len=s.integer("osl", 64),
        num_requests=s.integer("num_prompts", 100),
        warmup_requests=s.integer("warmups", None, minimum=0),
        concurrency=(concurrency or [1])[0],
        request_rate=rates[0] if rates else None,
        burstiness=s.number("burstiness", 1.0),
        max_concurrency=s.integer("max_concurrency", None),
        seed=s.integer("seed", 0, minimum=0),
        percentiles=tuple(float(p) for p in percentiles),
        goodput_slos_ms=goodput,
        num_accelerators=s.integer("accelerators", 1),
        temperature=s.number("temperature", 0.0, strict=False),
        include_usage=s.boolean("include_usage", True),
        eog_tokens=tuple(eog),
        use_server_tokenizer=tokenizer == "server",
        request_timeout=s.number("request_timeout", 600.0),
        progress=False,
        headers=headers,
        extra_body=s.table("extra_body"),
    )
    sweep_c = concurrency if concurrency is not None and len(concurrency) > 1 else None
    sweep_r = rates if rates is not None and len(rates) > 1 else None
    return config, sweep_c, sweep_r


def _goodput_raw(s: Settings) -> Any:
    raw = s.values.get("goodput")
    if raw is None or isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and all(isinstance(x, str) for x in raw):
        return raw
    raise TypeError('must be a table { ttft = 500 } or a list like ["ttft:500"]')


def validate_serving(spec: BenchmarkSpec) -> None:
    serving_config(spec)


def _point_params(ctx: BenchmarkContext, r: BenchmarkResult, sweep: bool) -> dict[str, Any]:
    params = dict(ctx.params)
    if sweep:  # one sweep point: its concurrency / rate instead of the list
        if r.config.closed_loop:
            params["concurrency"] = r.config.concurrency
        else:
            rate = r.config.request_rate
            params["request_rate"] = "inf" if rate is None or math.isinf(rate) else rate
    return params


def records_for(
    ctx: BenchmarkContext, results: Sequence[BenchmarkResult], max_failed_fraction: float, sweep: bool
) -> list[ResultRecord | FailureRecord]:
    out: list[ResultRecord | FailureRecord] = []
    for r in results:
        doc = r.to_json()
        params = _point_params(ctx, r, sweep)
        total, failed = doc["completed"] + doc["failed"], doc["failed"]
        errors = [e for e in doc["errors"] if e]
        where = f" at {_point_label(r)}" if sweep else ""
        ctx.log(
            f"   serving{where}: {doc['completed']}/{total} requests in {doc['duration']:.2f} s, "
            f"TTFT mean {doc['mean_ttft_ms']:.1f} ms, output {doc['output_throughput']:.1f} tok/s"
        )
        if doc["completed"] == 0:
            message = f"all {total} requests failed{where}: {errors[0] if errors else 'no error text'}"
            if not sweep:
                raise BenchmarkFailure("crash", message[:2000], "\n".join(errors[:20])[-4000:] or None)
            out.append(_failure(ctx, "crash", message, params))
            continue
        out += to_result_records(doc, suite=ctx.suite.name, benchmark=ctx.benchmark.name, params=params)
        out.append(ctx.result("failed_requests", failed, "requests", "lower", params=params))
        if failed / total > max_failed_fraction:
            out.append(
                _failure(ctx, "crash", f"{failed}/{total} requests failed{where}: {errors[0]}", params)
            )
    return out


def _point_label(r: BenchmarkResult) -> str:
    c = r.config
    return f"concurrency {c.concurrency}" if c.closed_loop else f"request rate {c.request_rate:g}/s"


def _failure(ctx: BenchmarkContext, cls: str, message: str, params: Mapping[str, Any]) -> FailureRecord:
    rec = ctx.failure(cls, message[:2000])
    rec.params = dict(params)
    return rec


def run_serving(ctx: BenchmarkContext) -> list[ResultRecord | FailureRecord]:
    try:
        config, sweep_c, sweep_r = serving_config(ctx.benchmark)
    except ValueError as exc:
        raise BenchmarkFailure("setup", f"invalid serving settings: {exc}") from exc
    s = Settings(ctx.benchmark, SERVING_KEYS)
    url = engine_url(ctx, http_url(s, "base_url"), KIND)
    config.base_url = url.rstrip("/")
    config.request_timeout = max(1.0, min(config.request_timeout, ctx.remaining()))
    watch = engine_watch(ctx, url)
    mode = "closed loop" if config.closed_loop else "open loop"
    ctx.log(
        f"   serving {url}: isl {config.input_len} osl {config.output_len}, {config.num_requests} prompts, "
        f"{mode}" + (f", sweep {sweep_c or sweep_r}" if sweep_c or sweep_r else "")
    )

    def make() -> Awaitable[list[BenchmarkResult]]:
        async def go() -> list[BenchmarkResult]:
            if sweep_c or sweep_r:
                return await arun_sweep(config, concurrencies=sweep_c, rates=sweep_r, engine=watch)
            return [await arun_benchmark(config, engine=watch)]

        return go()

    try:
        results = run_bounded(ctx, make, "serving benchmark")
    except WorkloadError as exc:
        raise BenchmarkFailure("setup", f"cannot build the workload: {exc}") from exc
    if watch is not None:
        watch.check()
    max_failed = float(s.number("max_failed_fraction", 0.0, minimum=0.0, strict=False))
    return records_for(ctx, results, max_failed, bool(sweep_c or sweep_r))


register_kind(KIND, run_serving, validate_serving)
