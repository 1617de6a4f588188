"""The load generator's TTFT, ITL and TPOT against a server that emits tokens at known times.

The scripted server runs in its own process (pinned to the last CPU when there are two or
more, busy-polling so that it writes each chunk within microseconds of its script) and records
when it wrote each chunk on CLOCK_MONOTONIC, the same clock as the client's
``time.perf_counter``. The client runs pinned to another core with ``busy_poll`` (no wake-up
delay from sleeping in epoll, which on a virtual machine can reach milliseconds).

Truth per request: TTFT = first write - client start; ITL = gaps between writes; TPOT = (last
write - first write) / (n - 1). The server's own precision against its script is checked too,
so the delays are known, not just observed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from bench_runner.serving.client import RequestSpec
from bench_runner.serving.loadgen import BenchConfig, arun_benchmark, run_benchmark
from bench_runner.serving.metrics import recompute_vllm_result
from bench_runner.serving.scripted_server import ScriptedServerProcess

TOL_S = 0.001  # 1 ms


def _cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServerProcess]:
    cpus = _cpus()
    with ScriptedServerProcess(cpu=cpus[-1] if len(cpus) >= 2 else None) as srv:
        yield srv


@pytest.fixture
def pinned() -> Iterator[None]:
    """Keep this (client) process off the server's core for the duration of a test."""
    cpus = _cpus()
    if len(cpus) < 2:
        yield
        return
    os.sched_setaffinity(0, set(cpus[:-1]))
    try:
        yield
    finally:
        os.sched_setaffinity(0, set(cpus))


def _check_against_server_log(result: Any, log: dict[str, Any], scripts: dict[str, dict[str, Any]]) -> None:
    ttft_err, itl_err, tpot_err, script_err = [], [], [], []
    for o in result.outputs:
        assert o.success, o.error
        key = f"r{o.index}"
        sends = log[key]["send_times"]
        script = scripts[key]
        n = script["n_tokens"]
        assert len(sends) == n and len(o.content_times) == n and o.output_tokens == n
        assert o.output_tokens_source == "usage"
        ttft_err.append(abs(o.ttft - (sends[0] - o.start)))
        true_gaps = np.diff(sends)
        itl_err.extend(np.abs(np.asarray(o.itl) - true_gaps).tolist())
        assert o.tpot is not None
        tpot_err.append(abs(o.tpot - (sends[-1] - sends[0]) / (n - 1)))
        # The server kept to its script: write k at t_recv + ttft + sum(itl[:k]).
        planned = log[key]["t_recv"] + (
            script["ttft_ms"] + np.concatenate([[0.0], np.cumsum(script["itl_ms"])])
        )
        script_err.extend(np.abs(np.asarray(sends) - planned[:n]).tolist())
    # Every request's TTFT and TPOT within 1 ms; ITL, pooled over all gaps, within 1 ms at p99
    # (a single gap can still catch the hypervisor descheduling the VM).
    assert max(ttft_err) < TOL_S, f"TTFT error max {max(ttft_err) * 1e3:.3f} ms"
    assert max(tpot_err) < TOL_S, f"TPOT error max {max(tpot_err) * 1e3:.3f} ms"
    itl_p99 = float(np.percentile(itl_err, 99))
    assert itl_p99 < TOL_S, f"ITL error p99 {itl_p99 * 1e3:.3f} ms"
    assert float(np.median(itl_err)) < 0.1 * TOL_S
    assert float(np.percentile(script_err, 99)) < TOL_S, "scripted server missed its own schedule"


def _script(i: int, n: int, ttft_ms: float, itl_ms: list[float]) -> dict[str, Any]:
    return {"id": f"r{i}", "n_tokens": n, "ttft_ms": ttft_ms, "itl_ms": itl_ms}


def _ms_to_s(script: dict[str, Any]) -> dict[str, Any]:
    return {**script, "ttft_ms": script["ttft_ms"] / 1000.0, "itl_ms": [x / 1000.0 for x in script["itl_ms"]]}


def _timing_concurrency_1(server: ScriptedServerProcess) -> None:
    httpx.post(server.base_url + "/_log/clear")
    n = 12
    scripts = {}
    specs = []
    for i in range(6):
        itl = [2.0 + ((i + k) * 7) % 23 for k in range(n - 1)]  # 2..24 ms, varied
        s = _script(i, n, 15.0 + 10 * i, itl)
        scripts[s["id"]] = s
        specs.append(RequestSpec("p", 4, n, {"scripted": s}))
    cfg = BenchConfig(
        base_url=server.base_url,
        num_requests=len(specs),
        concurrency=1,
        progress=False,
        use_server_tokenizer=False,
        warmup_requests=3,
        busy_poll=True,
    )
    result = run_benchmark(cfg, requests=specs)
    log = httpx.get(server.base_url + "/_log").json()
    _check_against_server_log(result, log, {k: _ms_to_s(v) for k, v in scripts.items()})
    # At concurrency 1 the nominal script itself is also met within 1 ms by the measurement.
    for o in result.outputs:
        s = scripts[f"r{o.index}"]
        assert np.max(np.abs(np.asarray(o.itl) * 1e3 - np.asarray(s["itl_ms"]))) < 1.0
        expected_tpot_ms = sum(s["itl_ms"]) / (n - 1)
        assert o.tpot is not None and abs(o.tpot * 1e3 - expected_tpot_ms) < 1.0
        assert o.ttft * 1e3 >= s["ttft_ms"]  # cannot see the token before it was sent
        # Beyond the script, TTFT also holds the request's own trip to the server (loopback).
        assert o.ttft * 1e3 - s["ttft_ms"] < 2.0
    # The aggregate we report equals the aggregate of the per-request arrays we store.
    doc = result.to_json()
    again = recompute_vllm_result(doc, percentiles=(50, 90, 95, 99))
    for key in ("mean_ttft_ms", "p99_itl_ms", "mean_tpot_ms", "median_e2el_ms", "output_throughput"):
        assert again[key] == pytest.approx(doc[key], rel=1e-9)
    # Raw timestamps are kept, relative to the first dispatch.
    raw = doc["requests"][0]
    assert raw["start"] >= 0 and len(raw["content_times"]) == n
    assert raw["ttft_time"] - raw["start"] == pytest.approx(doc["ttfts"][0])


def _timing_concurrency_64(server: ScriptedServerProcess) -> None:
    httpx.post(server.base_url + "/_log/clear")
    scripts = {}
    specs = []
    for i in range(64):
        n = 20 + (i * 7) % 9  # 20..28 tokens, so the streams do not all end together
        # Staggered first tokens spread the 64 streams' chunks over each 20 ms period; the first
        # token comes after the client has put all 64 simultaneous requests on the wire.
        s = _script(i, n, 150.0 + i * 0.3125, [20.0] * (n - 1))
        scripts[s["id"]] = s
        specs.append(RequestSpec("p", 4, n, {"scripted": s}))
    cfg = BenchConfig(
        base_url=server.base_url,
        num_requests=len(specs),
        concurrency=64,
        progress=False,
        use_server_tokenizer=False,
        busy_poll=True,
    )  # 64 warm-up requests open the 64 connections first
    result = run_benchmark(cfg, requests=specs)
    assert result.metrics["completed"] == 64 and result.metrics["failed"] == 0
    log = httpx.get(server.base_url + "/_log").json()
    _check_against_server_log(result, log, {k: _ms_to_s(v) for k, v in scripts.items()})
    assert result.metrics["mean_tpot_ms"] == pytest.approx(20.0, abs=1.0)
    assert result.metrics["median_itl_ms"] == pytest.approx(20.0, abs=1.0)


ATTEMPTS = 5


def _best_of(attempts: int, check: Callable[[], None]) -> None:
    """Run a timing check up to ``attempts`` times; pass if one attempt meets the bounds.

    Other processes on a shared or virtual machine can only add delay, never remove it, so one
    clean attempt shows what the client measures; noise in the others is not its error.
    """
    for attempt in range(attempts):
        try:
            check()
            return
        except AssertionError:
            if attempt == attempts - 1:
                raise


def test_timing_concurrency_1(server: ScriptedServerProcess, pinned: None) -> None:
    _best_of(ATTEMPTS, lambda: _timing_concurrency_1(server))


def test_timing_concurrency_64(server: ScriptedServerProcess, pinned: None) -> None:
    _best_of(ATTEMPTS, lambda: _timing_concurrency_64(server))


async def test_failures_are_counted_not_raised(server: ScriptedServerProcess) -> None:
    specs = [
        RequestSpec("p", 4, 5, {"scripted": {"ttft_ms": 5, "itl_ms": 1}}),
        RequestSpec("p", 4, 5, {"scripted": {"status": 503}}),
        RequestSpec("p", 4, 5, {"scripted": {"ttft_ms": 5, "itl_ms": 1, "disconnect_after": 2}}),
        RequestSpec("p", 4, 5, {"scripted": {"ttft_ms": 5, "itl_ms": 1, "usage": False}}),
    ]
    cfg = BenchConfig(
        base_url=server.base_url,
        num_requests=4,
        concurrency=2,
        progress=False,
        use_server_tokenizer=False,
        warmup_requests=0,
    )
    result = await arun_benchmark(cfg, requests=specs)
    doc = result.to_json()
    assert doc["completed"] == 2 and doc["failed"] == 2
    assert doc["errors"][1].startswith("HTTP 503")
    assert doc["errors"][2]  # dropped connection
    assert doc["output_lens"] == [5, 0, 0, 5]
    # No usage in the stream and no tokenizer: counted from content chunks, and said so.
    assert result.outputs[3].output_tokens_source == "chunks"
    assert doc["output_tokens_source"] == {"usage": 1, "chunks": 1}
    assert doc["total_output_tokens"] == 10


async def test_empty_finish_chunk_is_not_a_token(server: ScriptedServerProcess) -> None:
    """llama-cpp-python ends with an empty chunk carrying finish_reason: no ~0 ms ITL from it."""
    specs = [RequestSpec("p", 4, 6, {"scripted": {"ttft_ms": 5, "itl_ms": 10, "finish_chunk": True}})]
    cfg = BenchConfig(
        base_url=server.base_url,
        num_requests=1,
        progress=False,
        use_server_tokenizer=False,
        warmup_requests=0,
    )
    result = await arun_benchmark(cfg, requests=specs)
    o = result.outputs[0]
    assert o.success and o.finish_reason == "length"
    # A counted finish chunk would add a ~0 ms gap (it arrives with the last token).
    assert len(o.itl) == 5 and min(o.itl) > 0.002
    assert len(o.event_times) == 9  # 6 tokens + finish chunk + usage + [DONE], all kept raw


async def test_chat_endpoint_and_empty_first_chunk(server: ScriptedServerProcess) -> None:
    specs = [RequestSpec("p", 4, 5, {"scripted": {"ttft_ms": 8, "itl_ms": 6, "empty_first": True}})]
    cfg = BenchConfig(
        base_url=server.base_url,
        endpoint="chat",
        num_requests=1,
        progress=False,
        use_server_tokenizer=False,
        warmup_requests=0,
    )
    result = await arun_benchmark(cfg, requests=specs)
    o = result.outputs[0]
    assert o.success
    # TTFT counts the first choices event even with empty text; first non-empty is one ITL later.
    assert o.first_nonempty_time is not None and o.ttft_time is not None
    assert (o.first_nonempty_time - o.ttft_time) == pytest.approx(0.006, abs=0.004)
    assert o.text == " tok1 tok2 tok3 tok4"


async def test_open_loop_rate_and_max_concurrency(server: ScriptedServerProcess) -> None:
    specs = [RequestSpec("p", 4, 4, {"scripted": {"ttft_ms": 30, "itl_ms": 10}}) for _ in range(30)]
    cfg = BenchConfig(
        base_url=server.base_url,
        num_requests=30,
        request_rate=200.0,
        burstiness=1.0,
        max_concurrency=3,
        seed=5,
        progress=False,
        use_server_tokenizer=False,
    )
    result = await arun_benchmark(cfg, requests=specs)
    assert result.metrics["completed"] == 30
    # Each request lasts ~60 ms and at most 3 are in flight: 30 requests need >= ~0.6 s.
    assert result.duration >= 0.55
    starts = sorted(o.start for o in result.outputs)
    ends = sorted(o.end_time or 0 for o in result.outputs)
    in_flight = max(sum(1 for s in starts if s <= t) - sum(1 for e in ends if e < t) for t in starts)
    assert in_flight <= 3
    doc = result.to_json()
    assert doc["request_rate"] == 200.0 and doc["max_concurrency"] == 3 and doc["load_shape"] == "open"
