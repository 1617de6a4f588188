"""Metric definitions (METRICS.md), SSE parsing, arrival schedules and workload helpers."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from bench_runner.serving.client import RequestOutput, RequestSpec, build_payload
from bench_runner.serving.loadgen import BenchConfig, arrival_offsets
from bench_runner.serving.metrics import (
    PerRequest,
    compute_metrics,
    goodput_ratio,
    parse_goodput,
    per_request_from_outputs,
    recompute_vllm_result,
    summarize_ms,
    to_result_records,
)
from bench_runner.serving.sse import SSESplitter
from bench_runner.serving.workload import eos_suppression, exact_prompt

from .fakes import PieceTokenizer


def req(ttft: float, gaps: list[float], out: int, inp: int = 10, ok: bool = True) -> PerRequest:
    return PerRequest(ok, inp, out, ttft, gaps, ttft + sum(gaps))


def test_tpot_itl_e2el_and_throughput() -> None:
    reqs = [
        req(0.100, [0.010, 0.020, 0.030], 4),  # TPOT = 0.060 / 3 = 20 ms
        req(0.200, [0.040], 2),  # TPOT = 40 ms
        req(0.300, [], 1),  # one token: no TPOT sample
        req(0.0, [], 0, ok=False),
    ]
    m = compute_metrics(reqs, duration=2.0, percentiles=(50, 99))
    assert m["completed"] == 3 and m["failed"] == 1
    assert m["total_input_tokens"] == 30 and m["total_output_tokens"] == 7
    assert m["request_throughput"] == pytest.approx(1.5)
    assert m["output_throughput"] == pytest.approx(3.5)
    assert m["total_token_throughput"] == pytest.approx(18.5)
    assert m["mean_ttft_ms"] == pytest.approx(200.0)
    assert m["mean_tpot_ms"] == pytest.approx(30.0)
    assert m["median_tpot_ms"] == pytest.approx(30.0)
    # ITL pools every gap: 10, 20, 30, 40 ms.
    assert m["mean_itl_ms"] == pytest.approx(25.0)
    assert m["p50_itl_ms"] == pytest.approx(25.0)
    assert m["p99_itl_ms"] == pytest.approx(float(np.percentile([10, 20, 30, 40], 99)))
    assert m["mean_e2el_ms"] == pytest.approx((160 + 240 + 300) / 3)
    assert m["interactivity"] == pytest.approx(1000 / 30.0)
    assert m["request_goodput"] is None


def test_std_is_population_and_percentiles_linear() -> None:
    vals = [0.001, 0.002, 0.004, 0.010]
    s = summarize_ms(vals, (90, 99.9), "x")
    arr = np.array(vals) * 1000
    assert s["std_x_ms"] == pytest.approx(float(np.std(arr, ddof=0)))
    assert s["p90_x_ms"] == pytest.approx(float(np.percentile(arr, 90)))
    assert "p99.9_x_ms" in s
    # Linear interpolation between 4 and 10 at the 90th percentile: 4 + 0.7 * 6 = 8.2
    assert s["p90_x_ms"] == pytest.approx(8.2)


def test_goodput_inclusive_and_one_token_tpot_zero() -> None:
    # Binary-exact values (1/8, 1/16 s) so "exactly at the SLO" is exact in floating point.
    reqs = [
        req(0.125, [0.0625], 2),  # TTFT 125 ms and TPOT 62.5 ms: both exactly at the SLOs -> good
        req(0.1250001, [0.010], 2),  # TTFT just over
        req(0.050, [0.0626], 2),  # TPOT just over
        req(0.090, [], 1),  # one token: TPOT counts as 0 -> good
    ]
    m = compute_metrics(reqs, duration=4.0, goodput_slos_ms={"ttft": 125, "tpot": 62.5})
    assert m["request_goodput"] == pytest.approx(2 / 4.0)
    assert m["goodput_slos_ms"] == {"ttft": 125, "tpot": 62.5}
    # e2el: 187.5 (exact), 135.0001, 112.6, 90 ms
    m2 = compute_metrics(reqs, duration=4.0, goodput_slos_ms={"e2el": 187.5})
    assert m2["request_goodput"] == pytest.approx(4 / 4.0)
    m3 = compute_metrics(reqs, duration=4.0, goodput_slos_ms={"e2el": 187.4})
    assert m3["request_goodput"] == pytest.approx(3 / 4.0)


def test_parse_goodput() -> None:
    assert parse_goodput(["ttft:500", "tpot:50"]) == {"ttft": 500.0, "tpot": 50.0}
    assert parse_goodput({"e2el": 3000}) == {"e2el": 3000.0}
    with pytest.raises(ValueError):
        parse_goodput(["itl:5"])
    with pytest.raises(ValueError):
        parse_goodput(["ttft500"])


def test_per_accelerator_throughput() -> None:
    m = compute_metrics([req(0.1, [0.01], 2)], duration=1.0, num_accelerators=4)
    assert m["total_token_throughput_per_accelerator"] == pytest.approx(m["total_token_throughput"] / 4)


def test_request_output_properties() -> None:
    o = RequestOutput(index=0, input_len=5, max_tokens=3)
    o.start = 10.0
    o.wire_start = 10.0015
    o.ttft_time = 10.2
    # Chunk times (every message with choices) drive ITL and E2EL; the text-only list does not.
    o.chunk_times = [10.2, 10.25, 10.35, 10.36]
    o.content_times = [10.2, 10.25, 10.35]
    o.output_tokens = 3
    o.finish_reason = "length"
    o.output_tokens_source = "usage"
    o.success = True
    assert o.ttft == pytest.approx(0.2)
    assert o.itl == pytest.approx([0.05, 0.10, 0.01])
    assert o.e2el == pytest.approx(0.36)
    assert o.tpot == pytest.approx(0.08)
    assert o.client_queue == pytest.approx(0.0015)
    assert o.output_shortfall == 0
    (p,) = per_request_from_outputs([o])
    assert p.output_len == 3 and p.e2el == pytest.approx(0.36) and p.client_queue == pytest.approx(0.0015)


@pytest.mark.parametrize(
    ("tokens", "source", "finish", "shortfall"),
    [
        (64, "usage", "length", 0),
        (60, "usage", "length", 4),  # the server's own count says it is short
        (62, "tokenizer", "length", 0),  # re-tokenised text; the server said it hit max_tokens
        (30, "tokenizer", "stop", 34),
        (64, "tokenizer", "stop", 1),  # stopped early: at least one token short, whatever the count
        (50, "chunks", None, 14),  # no finish_reason: the count decides
    ],
)
def test_output_shortfall(tokens: int, source: str, finish: str | None, shortfall: int) -> None:
    o = RequestOutput(index=0, input_len=5, max_tokens=64, success=True)
    o.output_tokens, o.output_tokens_source, o.finish_reason = tokens, source, finish  # type: ignore[assignment]
    assert o.output_shortfall == shortfall
    o.success = False
    assert o.output_shortfall is None


def test_shortfall_and_client_queue_aggregates() -> None:
    reqs = [
        PerRequest(True, 10, 4, 0.1, [0.01] * 3, 0.13, output_shortfall=0, client_queue=0.001),
        PerRequest(True, 10, 2, 0.1, [0.01], 0.11, output_shortfall=2, client_queue=0.003),
        PerRequest(False, 10, 0, 0.0, [], 0.0),  # failed: in no statistic
    ]
    m = compute_metrics(reqs, 1.0, percentiles=(50,))
    assert m["short_requests"] == 1 and m["output_shortfall_tokens"] == 2
    assert m["mean_client_queue_ms"] == pytest.approx(2.0) and m["p50_client_queue_ms"] == pytest.approx(2.0)
    # A vLLM file's requests carry neither: no figure rather than a made-up 0.
    plain = compute_metrics([req(0.1, [0.01], 2)], 1.0)
    assert plain["short_requests"] is None and plain["output_shortfall_tokens"] is None
    assert "mean_client_queue_ms" not in plain


def test_goodput_ratio_definition() -> None:
    m = {"request_throughput": 4.0, "request_goodput": 3.0}
    assert goodput_ratio(m, 6.0) == pytest.approx(0.5)  # good requests/s over the best req/s
    assert goodput_ratio({"request_throughput": 4.0, "request_goodput": None}, 8.0) == pytest.approx(0.5)
    assert goodput_ratio(m, None) is None and goodput_ratio(m, 0.0) is None


def test_failed_requests_contribute_no_sample() -> None:
    """vLLM stores a failed request's TTFT as 0.0 and its ITL as []; ours stores None. Neither
    reaches a sample array or statistic, and a run with no completed request gives no record."""
    vllm_style = {
        "completed": 2,
        "failed": 1,
        "duration": 1.0,
        "mean_ttft_ms": 150.0,
        "ttfts": [0.1, 0.0, 0.2],
        "itls": [[0.01], [], [0.02]],
        "output_lens": [2, 0, 2],
        "errors": ["", "HTTP 503", ""],
    }
    recs = {r.metric: r for r in to_result_records(vllm_style, suite="s", benchmark="b")}
    assert recs["mean_ttft_ms"].samples == pytest.approx([100.0, 200.0])
    again = recompute_vllm_result(vllm_style, percentiles=(50,))
    assert again["completed"] == 2 and again["mean_ttft_ms"] == pytest.approx(150.0)
    ours = {
        **vllm_style,
        "ttfts": [0.1, None, 0.2],
        "itls": [[0.01], None, [0.02]],
        "output_lens": [2, None, 2],
    }
    assert recompute_vllm_result(ours, percentiles=(50,))["mean_ttft_ms"] == pytest.approx(150.0)
    assert {r.metric: r for r in to_result_records(ours, suite="s", benchmark="b")}[
        "mean_ttft_ms"
    ].samples == pytest.approx([100.0, 200.0])
    # Every request failed: the zeros of an empty statistic are no measurement.
    dead = compute_metrics([PerRequest(False, 10, 0, 0.0, [], 0.0)] * 3, 1.0)
    assert dead["mean_ttft_ms"] == 0.0  # vLLM's convention in the JSON ...
    assert to_result_records({**dead, "ttfts": [None] * 3}, suite="s", benchmark="b") == []  # ... no record
    # One output token per request: TPOT and ITL have no sample, so no TPOT or ITL record.
    one = compute_metrics([req(0.1, [], 1), req(0.2, [], 1)], 1.0)
    one.update({"ttfts": [0.1, 0.2], "itls": [[], []], "tpots": [None, None], "errors": ["", ""]})
    names = {r.metric for r in to_result_records(one, suite="s", benchmark="b")}
    assert "mean_ttft_ms" in names and not {n for n in names if "tpot" in n or "itl" in n}


def test_records_units_and_directions() -> None:
    m = compute_metrics([req(0.1, [0.01, 0.02], 3), req(0.2, [0.03], 2)], 1.0, goodput_slos_ms={"ttft": 150})
    m["ttfts"] = [0.1, 0.2]
    recs = {r.metric: r for r in to_result_records(m, suite="s", benchmark="b", params={"isl": 1})}
    assert recs["mean_ttft_ms"].unit == "ms" and recs["mean_ttft_ms"].direction == "lower"
    assert recs["mean_ttft_ms"].samples == pytest.approx([100.0, 200.0])
    assert recs["mean_ttft_ms"].stats is not None and recs["mean_ttft_ms"].stats["p99"] == m["p99_ttft_ms"]
    assert recs["p90_tpot_ms"].value == m["p90_tpot_ms"]
    assert recs["request_goodput"].unit == "req/s" and recs["request_goodput"].value == pytest.approx(1.0)
    assert recs["output_throughput"].direction == "higher"
    assert recs["interactivity"].unit == "tok/s"
    assert all(r.params == {"isl": 1} for r in recs.values())


# -- SSE ---------------------------------------------------------------------------------------
STREAM = (
    b": ping - 2024-01-01\n\n"
    b'data: {"choices":[{"text":"a"}]}\n\n'
    b'event: message\ndata: {"choices":\ndata: [{"text":"b"}]}\n\n'
    b'data:{"choices":[{"text":"c"}]}\n\n'
    b"data: [DONE]\n\n"
)
EXPECTED = [
    b'{"choices":[{"text":"a"}]}',
    b'{"choices":\n[{"text":"b"}]}',
    b'{"choices":[{"text":"c"}]}',
    b"[DONE]",
]


@pytest.mark.parametrize("crlf", [False, True])
def test_sse_splitter_any_chunking(crlf: bool) -> None:
    stream = STREAM.replace(b"\n", b"\r\n") if crlf else STREAM
    rng = random.Random(1)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(stream)), rng.randint(0, 12)))
        parts = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        sp = SSESplitter()
        got = [p for part in parts for p in sp.feed(part)]
        assert got == EXPECTED
        assert [json.loads(g) for g in got[:3]][1]["choices"][0]["text"] == "b"


def test_sse_flush_unterminated() -> None:
    sp = SSESplitter()
    assert sp.feed(b'data: {"x": 1}\n\ndata: {"y"') == [b'{"x": 1}']
    assert sp.feed(b": 2}") == []
    assert sp.flush() == [b'{"y": 2}']


# -- load shapes and workloads -----------------------------------------------------------------
def test_arrival_offsets_gamma_and_seeded() -> None:
    a = arrival_offsets(4001, rate=20.0, burstiness=1.0, seed=7)
    b = arrival_offsets(4001, rate=20.0, burstiness=1.0, seed=7)
    c = arrival_offsets(4001, rate=20.0, burstiness=1.0, seed=8)
    assert a == b and a != c
    assert a[0] == 0.0 and all(y >= x for x, y in zip(a, a[1:], strict=False))
    gaps = np.diff(a)
    assert gaps.mean() == pytest.approx(1 / 20.0, rel=0.06)
    # Poisson: coefficient of variation 1; burstiness 4 -> 1/sqrt(4) = 0.5
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.08)
    bursty = np.diff(arrival_offsets(4001, rate=20.0, burstiness=4.0, seed=7))
    assert bursty.mean() == pytest.approx(1 / 20.0, rel=0.06)
    assert bursty.std() / bursty.mean() == pytest.approx(0.5, rel=0.08)
    assert arrival_offsets(3, rate=math.inf, burstiness=1.0, seed=0) == [0.0, 0.0, 0.0]


def test_bench_config_validation() -> None:
    with pytest.raises(ValueError):
        BenchConfig(base_url="http://x", concurrency=0)
    with pytest.raises(ValueError):
        BenchConfig(base_url="http://x", request_rate=0)
    cfg = BenchConfig(base_url="http://x/", concurrency=8)
    assert cfg.base_url == "http://x" and cfg.n_warmup == 8 and cfg.closed_loop


def test_payloads_and_eos_fields() -> None:
    spec = RequestSpec("hello", 3, 7, eos_suppression("llama-cpp-python", 7, ("<eos>",)))
    body = build_payload("completions", "m", spec)
    assert body["prompt"] == "hello" and body["max_tokens"] == 7 and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["logit_bias"] == {"<eos>": -1e9} and body["logit_bias_type"] == "tokens"
    assert "min_tokens" not in body  # min_tokens + logit_bias would cancel each other in llama-cpp-python
    chat = build_payload("chat", "m", RequestSpec("hi", 1, 2, eos_suppression("vllm", 2)))
    assert chat["messages"] == [{"role": "user", "content": "hi"}] and chat["ignore_eos"] is True
    assert eos_suppression("llama-cpp-python", 5) == {"min_tokens": 5}


async def test_exact_prompt_hits_count() -> None:
    tok = PieceTokenizer.pairs()
    rng = random.Random(3)
    for n in (2, 17, 128, 513):
        text = await exact_prompt(tok, n, rng)
        assert len(await tok.encode(text)) == n
