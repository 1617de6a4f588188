"""Load shapes and the benchmark run: closed loop, open loop (gamma arrivals), sweeps.

``run_benchmark(config)`` is the Python API a suite calls; ``bench-runner serve-bench`` wraps it.
"""

from __future__ import annotations

import asyncio
import gc
import math
import ssl
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, cast

import httpx
import numpy as np

from .client import (
    ENDPOINT_PATHS,
    Endpoint,
    RequestOutput,
    RequestSpec,
    build_payload,
    make_client,
    send_request,
    stamped_transport_default,
)
from .loops import busy_loop, run_on
from .metrics import DEFAULT_PERCENTILES, compute_metrics, goodput_ratio, per_request_from_outputs
from .workload import (
    ServerTokenizer,
    Tokenizer,
    Workload,
    build_requests,
    detect_eog_tokens,
    eos_suppression,
)


class EngineWatch(Protocol):
    """Anything that can tell whether the engine under test is still alive."""

    def check(self) -> None:
        """Raise if the engine has died."""


@dataclass
class BenchConfig:
    """One serving benchmark run.

    Closed loop when ``request_rate`` is None (``concurrency`` users, each sending its next
    request when the previous one finishes); open loop otherwise (gamma inter-arrival gaps with
    shape ``burstiness``, 1 = Poisson; ``inf`` sends everything at once), optionally capped at
    ``max_concurrency`` requests in flight.
    """

    base_url: str
    model: str = ""
    endpoint: Endpoint = "completions"
    engine: str = "generic"  # llama-cpp-python | vllm | sglang | llama.cpp | generic
    input_len: int = 128
    output_len: int = 64
    num_requests: int = 100
    warmup_requests: int | None = None  # None: one per concurrent user (warms the connection pool)
    concurrency: int = 1
    request_rate: float | None = None
    burstiness: float = 1.0
    max_concurrency: int | None = None
    seed: int = 0
    percentiles: tuple[float, ...] = DEFAULT_PERCENTILES
    goodput_slos_ms: dict[str, float] = field(default_factory=dict)
    num_accelerators: int = 1
    temperature: float = 0.0
    include_usage: bool = True
    # End-of-generation tokens to suppress (llama-cpp-python). Empty: ask the server's tokenizer
    # which of the usual ones the model has (workload.detect_eog_tokens).
    eog_tokens: tuple[str, ...] = ()
    use_server_tokenizer: bool = True
    # Tokens every prompt starts with, on purpose (a prefix-caching workload); 0 shares nothing.
    shared_prefix_len: int = 0
    # Best request throughput (req/s) measured for this engine, hardware and workload, e.g. from
    # the results store: the denominator of goodput_ratio (a sweep's own best when higher).
    best_request_throughput: float | None = None
    request_timeout: float = 600.0
    progress: bool = True
    progress_interval: float = 5.0
    headers: dict[str, str] = field(default_factory=dict)
    extra_body: dict[str, Any] = field(default_factory=dict)
    # Poll instead of sleeping in the kernel (run_benchmark/run_sweep only): removes the
    # process wake-up delay from every timestamp at the cost of one busy core.
    busy_poll: bool = False
    # http:// requests through client.StampedTransport (body bytes stamped as they arrive from
    # the socket); False uses httpx's default transport (stamps taken when the consumer gets to
    # them). Default from BENCH_RUNNER_HTTP_TRANSPORT (``httpx`` selects the fallback).
    stamped_transport: bool = field(default_factory=stamped_transport_default)

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if self.request_rate is not None and not self.request_rate > 0:
            raise ValueError("request_rate must be > 0 (or inf)")
        if self.burstiness <= 0:
            raise ValueError("burstiness must be > 0")
        if self.num_requests < 1:
            raise ValueError("num_requests must be >= 1")
        if self.shared_prefix_len < 0:
            raise ValueError("shared_prefix_len must be >= 0")
        if self.best_request_throughput is not None and not self.best_request_throughput > 0:
            raise ValueError("best_request_throughput must be > 0")
        self.base_url = self.base_url.rstrip("/")

    @property
    def closed_loop(self) -> bool:
        return self.request_rate is None

    @property
    def users(self) -> int:
        """Requests in flight at most: closed-loop users, or the open loop's cap (1 if none)."""
        return self.concurrency if self.closed_loop else (self.max_concurrency or 1)

    @property
    def n_warmup(self) -> int:
        return self.users if self.warmup_requests is None else self.warmup_requests


@dataclass
class BenchmarkResult:
    """A finished run: per-request outputs and the aggregate metrics (vLLM key names)."""

    config: BenchConfig
    outputs: list[RequestOutput]
    warmup_outputs: list[RequestOutput]
    t_start: float
    t_end: float
    metrics: dict[str, Any]
    input_lens_exact: bool
    tokenizer: str | None
    date: str
    # How end of generation was suppressed: request fields, tokens, where the tokens came from.
    eos_suppression: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.t_end - self.t_start

    def to_json(self) -> dict[str, Any]:
        """The result JSON: vLLM's keys first, then our own raw per-request timestamps.

        Per-request arrays (``ttfts``, ``itls``, ``e2els``, ``tpots``, ``output_lens``,
        ``client_queues``, ``output_shortfalls``) have one entry per request, in request order,
        None where the request failed (and for ``tpots`` where it had one output token): a
        failed request contributes no value, not even vLLM's 0.0 TTFT.
        """
        cfg = self.config
        rate: float | str = (
            "inf" if cfg.request_rate is None or math.isinf(cfg.request_rate) else cfg.request_rate
        )
        data: dict[str, Any] = {
            "date": self.date,
            "backend": cfg.engine,
            "endpoint_type": cfg.endpoint,
            "model_id": cfg.model,
            "tokenizer_id": self.tokenizer,
            "num_prompts": cfg.num_requests,
            "request_rate": rate,
            "burstiness": cfg.burstiness,
            "max_concurrency": cfg.concurrency if cfg.closed_loop else cfg.max_concurrency,
            "load_shape": "closed" if cfg.closed_loop else "open",
        }
        data.update(self.metrics)

        def each(value: Callable[[RequestOutput], Any]) -> list[Any]:
            return [value(o) if o.success else None for o in self.outputs]

        data.update(
            {
                "input_lens": [o.input_len for o in self.outputs],
                "output_lens": each(lambda o: o.output_tokens),
                "requested_output_lens": [o.max_tokens for o in self.outputs],
                "ttfts": each(lambda o: o.ttft),
                "itls": each(lambda o: o.itl),
                "e2els": each(lambda o: o.e2el),
                "tpots": each(lambda o: o.tpot),
                "client_queues": each(lambda o: o.client_queue),
                "output_shortfalls": each(lambda o: o.output_shortfall),
                "generated_texts": [o.text for o in self.outputs],
                "errors": [o.error for o in self.outputs],
                "output_tokens_source": dict(
                    Counter(o.output_tokens_source for o in self.outputs if o.success)
                ),
                "input_lens_exact": self.input_lens_exact,
                "eos_suppression": self.eos_suppression,
                "workload": {
                    "input_len": cfg.input_len,
                    "output_len": cfg.output_len,
                    "seed": cfg.seed,
                    "warmup_requests": cfg.n_warmup,
                    "shared_prefix_len": cfg.shared_prefix_len,
                },
                "requests": [_raw_request(o, self.t_start) for o in self.outputs],
            }
        )
        return data


def _raw_request(o: RequestOutput, t0: float) -> dict[str, Any]:
    """Raw timestamps of one request, in seconds relative to the run start (first dispatch)."""

    def rel(t: float | None) -> float | None:
        return None if t is None else t - t0

    return {
        "index": o.index,
        "start": rel(o.start),
        "wire_start": rel(o.wire_start),
        "scheduled": rel(o.scheduled),
        "ttft_time": rel(o.ttft_time),
        "first_nonempty_time": rel(o.first_nonempty_time),
        "chunk_times": [t - t0 for t in o.chunk_times],
        "content_times": [t - t0 for t in o.content_times],
        "event_times": [t - t0 for t in o.event_times],
        "end_time": rel(o.end_time),
        "input_len": o.input_len,
        "max_tokens": o.max_tokens,
        "output_tokens": o.output_tokens,
        "output_tokens_source": o.output_tokens_source,
        "usage_completion_tokens": o.usage_completion_tokens,
        "usage_prompt_tokens": o.usage_prompt_tokens,
        "finish_reason": o.finish_reason,
        "status_code": o.status_code,
        "success": o.success,
        "error": o.error,
    }


def arrival_offsets(n: int, rate: float | None, burstiness: float, seed: int) -> list[float]:
    """Planned dispatch times (s from start): gamma gaps with mean 1/rate and shape burstiness.

    The first request goes at 0; ``inf``/None rate sends all at once. The schedule is absolute,
    so a late dispatch does not shift the ones after it.
    """
    if rate is None or math.isinf(rate):
        return [0.0] * n
    rng = np.random.default_rng(seed)
    gaps = rng.gamma(shape=burstiness, scale=1.0 / (rate * burstiness), size=max(0, n - 1))
    return [0.0, *np.cumsum(gaps).tolist()][:n]


class _Progress:
    """Prints requests done and content chunks/s to stderr every ``interval`` seconds."""

    def __init__(self, total: int, interval: float, enabled: bool) -> None:
        self.total = total
        self.interval = interval
        self.enabled = enabled
        self.done = 0
        self.failed = 0
        self.chunks = [0]
        self.t0 = time.perf_counter()

    def report(self, final: bool = False) -> None:
        if not self.enabled:
            return
        el = time.perf_counter() - self.t0
        rate = self.chunks[0] / el if el > 0 else 0.0
        tag = "finished" if final else "progress"
        print(
            f"[serve-bench] {tag}: {self.done}/{self.total} requests ({self.failed} failed), "
            f"{rate:.1f} tok/s (content chunks), {el:.1f} s",
            file=sys.stderr,
            flush=True,
        )

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.report()


class ClientPool:
    """One single-connection ``httpx.AsyncClient`` per request in flight, reused afterwards.

    httpx's shared connection pool matches each queued request against every connection in
    Python (``_assign_requests_to_connections`` calls ``is_idle()`` on all of them, again for
    each request), which at 64 requests in flight cost over a second of queueing per round
    on a 2-core runner. A free list of one-connection clients makes that O(1). The clients
    share one TLS context, whose creation (loading the CA bundle) is the expensive part.
    """

    def __init__(
        self, timeout: httpx.Timeout, verify: ssl.SSLContext | bool = True, stamped: bool | None = None
    ) -> None:
        self._timeout = timeout
        self._verify: ssl.SSLContext | bool = ssl.create_default_context() if verify is True else verify
        self._stamped = stamped
        self._idle: list[httpx.AsyncClient] = []
        self._all: list[httpx.AsyncClient] = []

    def acquire(self) -> httpx.AsyncClient:
        if self._idle:
            return self._idle.pop()
        client = make_client(
            timeout=self._timeout,
            verify=self._verify,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            stamped=self._stamped,
        )
        self._all.append(client)
        return client

    def release(self, client: httpx.AsyncClient) -> None:
        self._idle.append(client)

    def __len__(self) -> int:
        return len(self._all)

    async def aclose(self) -> None:
        for client in self._all:
            await client.aclose()
        self._all.clear()
        self._idle.clear()


async def _execute(
    pool: ClientPool,
    config: BenchConfig,
    specs: Sequence[RequestSpec],
    *,
    warmup: bool,
    progress: _Progress | None,
) -> tuple[list[RequestOutput], float, float]:
    url = config.base_url + ENDPOINT_PATHS[config.endpoint]
    outputs = [
        RequestOutput(index=i, input_len=s.input_len, max_tokens=s.max_tokens, warmup=warmup)
        for i, s in enumerate(specs)
    ]
    payloads = [
        build_payload(
            config.endpoint,
            config.model,
            s,
            temperature=config.temperature,
            include_usage=config.include_usage,
        )
        for s in specs
    ]
    counter = progress.chunks if progress else None
    headers = config.headers or None

    async def one(i: int) -> None:
        client = pool.acquire()
        try:
            await send_request(client, url, payloads[i], outputs[i], counter, headers)
        finally:
            pool.release(client)
        if progress:
            progress.done += 1
            progress.failed += 0 if outputs[i].success else 1

    t_start = time.perf_counter()
    if progress:
        progress.t0 = t_start
    if config.closed_loop or warmup:
        next_index = iter(range(len(specs)))

        async def user() -> None:
            for i in next_index:
                await one(i)

        users = config.concurrency if not warmup else min(config.users, len(specs))
        await asyncio.gather(*(user() for _ in range(users)))
    else:
        offsets = arrival_offsets(len(specs), config.request_rate, config.burstiness, config.seed)
        sem = asyncio.Semaphore(config.max_concurrency) if config.max_concurrency else None

        async def limited(i: int) -> None:
            if sem is None:
                await one(i)
                return
            async with sem:
                await one(i)

        tasks = []
        for i, off in enumerate(offsets):
            target = t_start + off
            outputs[i].scheduled = target
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(limited(i)))
        await asyncio.gather(*tasks)
    return outputs, t_start, time.perf_counter()


async def _watch_engine(engine: EngineWatch, interval: float = 0.5) -> None:
    while True:
        engine.check()
        await asyncio.sleep(interval)


async def _count_output_tokens(outputs: Sequence[RequestOutput], tok: ServerTokenizer | None) -> None:
    """Replace chunk-count estimates with tokenizer counts (done after the run, off the clock)."""
    if tok is None:
        return
    base = len(await tok.encode(""))
    for o in outputs:
        if o.success and o.output_tokens_source == "chunks":
            o.output_tokens = len(await tok.encode(o.text)) - base if o.text else 0
            o.output_tokens_source = "tokenizer"


async def arun_benchmark(
    config: BenchConfig,
    *,
    engine: EngineWatch | None = None,
    tokenizer: Tokenizer | None = None,
    requests: Sequence[RequestSpec] | None = None,
    prompt_offset: int = 0,
) -> BenchmarkResult:
    """Run one benchmark. Failed requests are counted, never raised.

    If ``engine`` is given it is checked every 0.5 s; when it dies the run stops and the
    engine's exception (e.g. an ``EngineFailure`` of class ``crash`` or ``oom``) propagates.
    ``prompt_offset`` is the index of this run's first prompt among the prompts already sent
    to the engine by the same caller (a sweep), so that every prompt opens differently.
    """
    timeout = httpx.Timeout(config.request_timeout, connect=30.0)
    pool = ClientPool(timeout, stamped=config.stamped_transport)
    async with httpx.AsyncClient(timeout=timeout) as client:
        server_tok: ServerTokenizer | None = None
        if tokenizer is None and config.use_server_tokenizer:
            server_tok = await ServerTokenizer.detect(client, config.base_url, config.model)
            tokenizer = server_tok
        extra, suppression = await _eos_suppression(config, tokenizer)
        extra.update(config.extra_body)
        workload = Workload(
            config.input_len,
            config.output_len,
            config.num_requests,
            config.seed,
            extra,
            shared_prefix_len=config.shared_prefix_len,
        )
        if requests is None:
            specs, exact = await build_requests(workload, tokenizer, first_index=prompt_offset)
        else:
            specs, exact = list(requests), tokenizer is not None
        warm_specs, _ = await build_requests(
            workload,
            tokenizer,
            count=config.n_warmup,
            salt=1,
            first_index=prompt_offset + config.num_requests,
        )

        watcher = asyncio.create_task(_watch_engine(engine)) if engine is not None else None
        progress = _Progress(len(specs), config.progress_interval, config.progress)
        reporter = asyncio.create_task(progress.run()) if config.progress else None
        try:
            run = asyncio.create_task(_run_phases(pool, config, warm_specs, specs, progress))
            waiters: set[asyncio.Task[Any]] = {run} | ({watcher} if watcher else set())
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if watcher is not None and watcher in done:
                run.cancel()
                await asyncio.gather(run, return_exceptions=True)
                watcher.result()  # raises the engine failure
                raise RuntimeError("engine watcher stopped unexpectedly")
            warm_out, outputs, t_start, t_end = run.result()
        finally:
            for task in (watcher, reporter):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            await pool.aclose()
        if engine is not None:
            engine.check()  # the engine may have died right at the end
        progress.report(final=True)
        # Token counting after the clock stopped. Only our own server tokenizer is used here:
        # the counts must be the engine's own.
        await _count_output_tokens(outputs, server_tok)
        # Input tokens: the client-side length when the prompt was built to it (vLLM reports
        # its dataset's prompt_len); otherwise the server's count where it sends one.
        if not exact:
            for o in outputs:
                if o.usage_prompt_tokens is not None:
                    o.input_len = int(o.usage_prompt_tokens)
    metrics = compute_metrics(
        per_request_from_outputs(outputs),
        t_end - t_start,
        percentiles=config.percentiles,
        goodput_slos_ms=config.goodput_slos_ms,
        num_accelerators=config.num_accelerators,
    )
    _set_goodput_ratio(metrics, config.best_request_throughput, "given")
    _warn_short(metrics)
    return BenchmarkResult(
        config=config,
        outputs=outputs,
        warmup_outputs=warm_out,
        t_start=t_start,
        t_end=t_end,
        metrics=metrics,
        input_lens_exact=exact,
        tokenizer=(
            f"server:{server_tok.flavour}"
            if server_tok
            else (type(tokenizer).__name__ if tokenizer else None)
        ),
        date=time.strftime("%Y%m%d-%H%M%S"),
        eos_suppression=suppression,
    )


async def _eos_suppression(
    config: BenchConfig, tokenizer: Tokenizer | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Request fields that make the engine generate ``output_len`` tokens, and how they came about.

    llama-cpp-python has no ``ignore_eos``; without ``eog_tokens`` the served model's
    end-of-generation tokens are found through its tokenizer, as ``--reference-engine`` names
    Gemma's. Without a tokenizer only ``min_tokens`` is left, which masks ``<eos>`` alone: the
    output-length check of every run then shows any request that stopped early.
    """
    eog, source = tuple(config.eog_tokens), "given"
    if config.engine == "llama-cpp-python" and not eog:
        eog = await detect_eog_tokens(tokenizer) if tokenizer is not None else ()
        source = "detected" if eog else "none"
    fields = eos_suppression(config.engine, config.output_len, eog)
    info = {"fields": sorted(fields), "eog_tokens": list(eog), "eog_source": source if eog else "none"}
    return fields, info


def _set_goodput_ratio(metrics: dict[str, Any], best: float | None, source: str) -> None:
    """``goodput_ratio`` over ``best`` (or this run's own throughput when that is higher)."""
    own = metrics.get("request_throughput")
    if best is None or own is None or not math.isfinite(own):
        metrics["goodput_ratio"] = None
        metrics["goodput_ratio_reference"] = None
        return
    if own > best:
        best, source = own, "this run"
    metrics["goodput_ratio"] = goodput_ratio(metrics, best)
    metrics["goodput_ratio_reference"] = {"request_throughput": best, "source": source}


def _warn_short(metrics: dict[str, Any]) -> None:
    short = metrics.get("short_requests")
    if short:
        print(
            f"[serve-bench] warning: {short} request(s) produced fewer output tokens than asked "
            f"({metrics['output_shortfall_tokens']} tokens short in all)",
            file=sys.stderr,
            flush=True,
        )


async def _run_phases(
    pool: ClientPool,
    config: BenchConfig,
    warm_specs: Sequence[RequestSpec],
    specs: Sequence[RequestSpec],
    progress: _Progress,
) -> tuple[list[RequestOutput], list[RequestOutput], float, float]:
    warm_out: list[RequestOutput] = []
    if warm_specs:
        warm_out, _, _ = await _execute(pool, config, warm_specs, warmup=True, progress=None)
    # Everything alive after the warm-up (modules, pools, connections) moves out of the
    # collector's reach, so a full collection during the measured phase stays short: GC pauses
    # are time the client is not reading sockets.
    gc.collect()
    gc.freeze()
    try:
        outputs, t_start, t_end = await _execute(pool, config, specs, warmup=False, progress=progress)
    finally:
        gc.unfreeze()
    return warm_out, outputs, t_start, t_end


def run_benchmark(config: BenchConfig, **kwargs: Any) -> BenchmarkResult:
    """Synchronous wrapper around ``arun_benchmark`` (on a busy-polling loop if asked)."""
    if config.busy_poll:
        return cast(BenchmarkResult, run_on(busy_loop, arun_benchmark(config, **kwargs)))
    return asyncio.run(arun_benchmark(config, **kwargs))


async def arun_sweep(
    config: BenchConfig,
    *,
    concurrencies: Sequence[int] | None = None,
    rates: Sequence[float] | None = None,
    engine: EngineWatch | None = None,
    tokenizer: Tokenizer | None = None,
) -> list[BenchmarkResult]:
    """Run ``config`` once per concurrency (closed loop) or per request rate (open loop).

    Each point gets ``goodput_ratio``: its good requests/s (all requests when no SLO is set)
    divided by the best request throughput for the engine and hardware, the systems view of
    goodput: ``config.best_request_throughput`` or the sweep's own best, whichever is higher.
    Every point opens its prompts with indices after the previous points', so no prompt of one
    point shares a prefix with a prompt of another.
    """
    if (concurrencies is None) == (rates is None):
        raise ValueError("give exactly one of concurrencies or rates")
    points: list[BenchConfig] = []
    for value in concurrencies or rates or []:
        params = asdict(config)
        if concurrencies is not None:
            params.update(concurrency=int(value), request_rate=None)
        else:
            params.update(request_rate=float(value))
        points.append(BenchConfig(**params))
    results: list[BenchmarkResult] = []
    offset = 0
    for p in points:
        results.append(await arun_benchmark(p, engine=engine, tokenizer=tokenizer, prompt_offset=offset))
        offset += p.num_requests + p.n_warmup
    best = max((r.metrics["request_throughput"] for r in results), default=0.0)
    source = "sweep"
    if config.best_request_throughput is not None and config.best_request_throughput >= best:
        best, source = config.best_request_throughput, "given"
    for r in results:
        _set_goodput_ratio(r.metrics, best if best > 0 else None, source)
    return results


def run_sweep(config: BenchConfig, **kwargs: Any) -> list[BenchmarkResult]:
    """Synchronous wrapper around ``arun_sweep``."""
    if config.busy_poll:
        return cast(list[BenchmarkResult], run_on(busy_loop, arun_sweep(config, **kwargs)))
    return asyncio.run(arun_sweep(config, **kwargs))
