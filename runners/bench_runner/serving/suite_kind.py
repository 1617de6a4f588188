"""`kind = "serving"` in a suite: the serving load generator against the suite's engine.

A thin adapter: it checks the benchmark's settings (`ServingOptions`), builds a `BenchConfig`
(the same fields as `bench-runner serve-bench`), runs it under the benchmark's deadline and stop
event, and turns the result into records with `metrics.to_result_records`. Settings may sit in
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
| `shared_prefix_len` | 0 | tokens every prompt starts with, on purpose (a prefix-caching workload); |
| | | part of the workload, so the records' params carry it when it is not 0 |
| `goodput` | none | SLOs in ms: `{ ttft = 500, tpot = 50 }` or `["ttft:500"]` |
| `best_request_throughput` | none | req/s: the best measured for this engine, hardware and workload, |
| | | `goodput_ratio`'s denominator (a sweep's own best, or this run's, when higher) |
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
(e.g. `isl` too small) -> `setup`. Every run also reports `failed_requests`. Requests that came
back with fewer output tokens than `osl` are a warning in the run log, not a failure: their
shortfall is stored as `short_requests` and `output_shortfall_tokens` beside the numbers.

With `best_request_throughput` (or a sweep), the reference `goodput_ratio` was taken against
goes to the posted batch's context: `{"serving": {"<benchmark>": {"goodput_ratio_reference":
{"request_throughput": ..., "source": "given" | "sweep" | "this run"}}}}`.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from ..records import FailureRecord, ResultRecord
from ..suite import BenchmarkContext, BenchmarkFailure, BenchmarkSpec, register_kind
from ..suite.kit import EngineFlavour, engine_url, engine_watch, resolve_flavour, run_bounded
from ..suite.options import (
    HttpUrl,
    IntSweep,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    RateSweep,
    Strings,
    Table,
    invalid,
    read_options,
)
from .loadgen import BenchConfig, BenchmarkResult, arun_benchmark, arun_sweep
from .metrics import parse_goodput, to_result_records
from .workload import WorkloadError

KIND = "serving"


def _goodput(value: Any) -> Any:
    """`{ ttft = 500 }`, `"ttft:500"` or `["ttft:500", ...]` -> SLOs in ms by metric."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, dict) and not (
        isinstance(value, list) and all(isinstance(x, str) for x in value)
    ):
        raise ValueError(f'must be a table {{ ttft = 500 }} or a list like ["ttft:500"], got {value!r}')
    try:
        return parse_goodput(value)
    except TypeError as exc:  # a table value that is not a number
        raise ValueError(str(exc)) from exc


Goodput = Annotated[dict[str, float], BeforeValidator(_goodput)]
Percentile = Annotated[float, Field(gt=0, le=100)]


class ServingOptions(Table):
    """The settings of a serving benchmark (see the table above)."""

    base_url: HttpUrl | None = None
    endpoint: Literal["completions", "chat"] = "completions"
    model: str = ""
    engine: EngineFlavour = "generic"
    eog_tokens: Strings = []
    isl: PositiveInt = 128
    osl: PositiveInt = 64
    num_prompts: PositiveInt = 100
    warmups: NonNegativeInt | None = None
    concurrency: IntSweep | None = None
    request_rate: RateSweep | None = None
    burstiness: PositiveFloat = 1.0
    max_concurrency: PositiveInt | None = None
    seed: NonNegativeInt = 0
    shared_prefix_len: NonNegativeInt = 0
    goodput: Goodput = {}
    best_request_throughput: PositiveFloat | None = None
    percentiles: Annotated[list[Percentile], Field(min_length=1)] = [50, 90, 95, 99]
    accelerators: PositiveInt = 1
    temperature: NonNegativeFloat = 0.0
    tokenizer: Literal["server", "none"] = "server"
    include_usage: bool = True
    request_timeout: PositiveFloat = 600.0
    extra_body: dict[str, Any] = {}
    headers: dict[str, str] = {}
    max_failed_fraction: Annotated[float, Field(ge=0, le=1)] = 0.0

    @model_validator(mode="after")
    def _one_loop(self) -> ServingOptions:
        given = self.model_fields_set
        if "concurrency" in given and "request_rate" in given:
            raise invalid(
                "concurrency",
                "closed loop (concurrency) or open loop (request_rate), not both; "
                "cap an open loop with max_concurrency",
            )
        for key in ("max_concurrency", "burstiness"):
            if key in given and "request_rate" not in given:
                raise invalid(key, "only with request_rate (open loop)")
        if self.shared_prefix_len and self.shared_prefix_len >= self.isl:
            raise invalid("shared_prefix_len", f"must leave the prompt room (isl {self.isl})")
        return self


def serving_options(spec: BenchmarkSpec) -> ServingOptions:
    return read_options(spec, ServingOptions)


def validate_serving(spec: BenchmarkSpec) -> None:
    serving_options(spec)


def serving_config(options: ServingOptions) -> tuple[BenchConfig, list[int] | None, list[float] | None]:
    """(config without base_url, concurrency sweep, rate sweep)."""
    engine, model, eog = resolve_flavour(options.engine, options.model, options.eog_tokens)
    concurrency, rates = options.concurrency, options.request_rate
    config = BenchConfig(
        base_url=options.base_url or "http://unset",
        model=model,
        endpoint=options.endpoint,
        engine=engine,
        input_len=options.isl,
        output_len=options.osl,
        num_requests=options.num_prompts,
        warmup_requests=options.warmups,
        concurrency=(concurrency or [1])[0],
        request_rate=rates[0] if rates else None,
        burstiness=options.burstiness,
        max_concurrency=options.max_concurrency,
        seed=options.seed,
        percentiles=tuple(options.percentiles),
        goodput_slos_ms=dict(options.goodput),
        shared_prefix_len=options.shared_prefix_len,
        best_request_throughput=options.best_request_throughput,
        num_accelerators=options.accelerators,
        temperature=options.temperature,
        include_usage=options.include_usage,
        eog_tokens=tuple(eog),
        use_server_tokenizer=options.tokenizer == "server",
        request_timeout=options.request_timeout,
        progress=False,
        headers=dict(options.headers),
        extra_body=dict(options.extra_body),
    )
    sweep_c = concurrency if concurrency is not None and len(concurrency) > 1 else None
    sweep_r = rates if rates is not None and len(rates) > 1 else None
    return config, sweep_c, sweep_r


def _point_params(ctx: BenchmarkContext, r: BenchmarkResult, sweep: bool) -> dict[str, Any]:
    params = dict(ctx.params)
    if r.config.shared_prefix_len:  # a prefix-caching workload is another workload
        params["shared_prefix_len"] = r.config.shared_prefix_len
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
        short = doc.get("short_requests")
        if short:
            ctx.log(
                f"   warning: {short} of {doc['completed']} requests{where} produced fewer than "
                f"{r.config.output_len} output tokens ({doc['output_shortfall_tokens']} short in all); "
                "stored as short_requests and output_shortfall_tokens"
            )
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
    return ctx.failure(cls, message[:2000], params=dict(params))


def run_serving(ctx: BenchmarkContext) -> list[ResultRecord | FailureRecord]:
    try:
        options = serving_options(ctx.benchmark)
    except ValueError as exc:
        raise BenchmarkFailure("setup", f"invalid serving settings: {exc}") from exc
    config, sweep_c, sweep_r = serving_config(options)
    url = engine_url(ctx, options.base_url, KIND)
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
    # one reference for the whole benchmark: given, the sweep's best, or this run's own
    reference = next(
        (r.metrics["goodput_ratio_reference"] for r in results if r.metrics.get("goodput_ratio_reference")),
        None,
    )
    if reference is not None:
        ctx.report_context({"goodput_ratio_reference": dict(reference)})
    return records_for(ctx, results, options.max_failed_fraction, bool(sweep_c or sweep_r))


register_kind(KIND, run_serving, validate_serving)
