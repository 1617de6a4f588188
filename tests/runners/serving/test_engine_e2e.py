"""End to end against the real reference engine: llama.cpp (llama-cpp-python) + Gemma 3 270M."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from bench_runner.engine import REFERENCE_EOG_TOKENS, EngineProcess, reference_engine_command
from bench_runner.localgen import measure_server
from bench_runner.serving.loadgen import BenchConfig, arun_benchmark
from bench_runner.serving.metrics import to_result_records
from bench_runner.serving.workload import ServerTokenizer, Workload, build_requests

pytestmark = pytest.mark.engine

ISL, OSL, N, CONC = 32, 16, 20, 3


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EngineProcess, str, str]]:
    cmd = reference_engine_command()
    log = Path(tmp_path_factory.mktemp("engine")) / "engine.log"
    eng = cmd.process(log, startup_timeout=120)
    eng.start()
    try:
        eng.wait_healthy()
        yield eng, cmd.base_url, cmd.model
    finally:
        eng.stop()


async def test_serving_benchmark_on_reference_engine(engine: tuple[EngineProcess, str, str]) -> None:
    eng, base_url, model = engine
    # No eog_tokens, as with --base-url: the model's end tokens are found through its tokenizer.
    cfg = BenchConfig(
        base_url=base_url,
        model=model,
        engine="llama-cpp-python",
        input_len=ISL,
        output_len=OSL,
        num_requests=N,
        concurrency=CONC,
        warmup_requests=1,
        seed=1,
        goodput_slos_ms={"ttft": 60_000.0},
        progress=False,
    )
    result = await arun_benchmark(cfg, engine=eng)
    doc = result.to_json()
    assert doc["completed"] == N and doc["failed"] == 0, doc["errors"]
    assert doc["tokenizer_id"] == "server:llama-cpp-python" and doc["input_lens_exact"]
    assert doc["input_lens"] == [ISL] * N and doc["total_input_tokens"] == ISL * N
    # The server sends no usage while streaming: counts come from its tokenizer, and say so.
    assert doc["output_tokens_source"] == {"tokenizer": N}
    # End of generation suppressed as --reference-engine does (Gemma: <eos> and <end_of_turn>):
    # every request ran to max_tokens, and the run's own check says so.
    suppression = doc["eos_suppression"]
    assert suppression["eog_source"] == "detected" and suppression["fields"] == [
        "logit_bias",
        "logit_bias_type",
    ]
    assert set(REFERENCE_EOG_TOKENS) <= set(suppression["eog_tokens"])
    assert all(o.finish_reason == "length" for o in result.outputs)
    assert doc["short_requests"] == 0 and doc["output_shortfalls"] == [0] * N
    assert all(len(o.content_times) >= OSL - 2 for o in result.outputs)
    assert all(OSL - 2 <= n <= OSL + 2 for n in doc["output_lens"])  # retokenised text
    # vLLM's chunk rule: every message with choices is a chunk, the final finish_reason one too.
    for o in result.outputs:
        assert len(o.chunk_times) >= len(o.content_times) and len(o.itl) == len(o.chunk_times) - 1
        assert o.e2el == o.chunk_times[-1] - o.start
        assert o.client_queue is not None and 0 <= o.client_queue < o.ttft
    for key in (
        "mean_ttft_ms",
        "median_ttft_ms",
        "p99_ttft_ms",
        "mean_tpot_ms",
        "mean_itl_ms",
        "mean_e2el_ms",
    ):
        assert math.isfinite(doc[key]) and doc[key] > 0, key
    assert doc["p99_ttft_ms"] >= doc["median_ttft_ms"] >= 0
    assert doc["mean_e2el_ms"] > doc["mean_ttft_ms"]
    for o in result.outputs:
        assert o.ttft > 0 and o.e2el > o.ttft and all(g >= 0 for g in o.itl)
        assert o.tpot is not None and o.tpot > 0
    # Throughputs agree with token counts and duration.
    dur = doc["duration"]
    assert dur > 0
    assert doc["request_throughput"] == pytest.approx(N / dur, rel=1e-12)
    assert doc["output_throughput"] == pytest.approx(sum(doc["output_lens"]) / dur, rel=1e-12)
    assert doc["total_token_throughput"] == pytest.approx(
        (ISL * N + sum(doc["output_lens"])) / dur, rel=1e-12
    )
    # The run cannot be shorter than its longest request, nor longer than all requests back to back.
    e2els = doc["e2els"]
    assert max(e2els) <= dur <= sum(e2els) + 1.0
    assert 1.0 < doc["output_throughput"] < 2000.0
    assert doc["request_goodput"] == pytest.approx(doc["request_throughput"])  # a 60 s TTFT SLO is met
    assert doc["interactivity"] == pytest.approx(1000.0 / doc["mean_tpot_ms"])
    recs = to_result_records(doc, suite="serving", benchmark=f"gemma-270m-{ISL}x{OSL}-c{CONC}")
    assert {"mean_ttft_ms", "p99_tpot_ms", "output_throughput", "request_goodput"} <= {r.metric for r in recs}
    eng.check()  # still alive


async def test_prompts_have_exact_token_counts(engine: tuple[EngineProcess, str, str]) -> None:
    _, base_url, model = engine
    async with httpx.AsyncClient(timeout=30) as client:
        tok = await ServerTokenizer.detect(client, base_url, model)
        assert tok is not None and tok.flavour == "llama-cpp-python"
        specs, exact = await build_requests(Workload(128, 8, 4, seed=3), tok)
        assert exact and len({s.prompt for s in specs}) == 4  # distinct prompts
        token_lists = []
        for s in specs:
            # Independent check with a raw call to the engine's own tokenizer endpoint.
            resp = await client.post(base_url + "/extras/tokenize", json={"input": s.prompt})
            token_lists.append(resp.json()["tokens"])
            assert len(token_lists[-1]) == 128
    # No two prompts share more than BOS and a word's first piece: nothing for the cache to reuse.
    for i, a in enumerate(token_lists):
        for b in token_lists[i + 1 :]:
            shared = next((k for k, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), len(a))
            assert shared <= 3, shared


async def test_local_generation_speed_against_server(engine: tuple[EngineProcess, str, str]) -> None:
    _, base_url, model = engine
    res = await measure_server(
        base_url,
        32,
        12,
        repetitions=2,
        model=model,
        engine="llama-cpp-python",
        eog_tokens=REFERENCE_EOG_TOKENS,
    )
    s = res.summary()
    assert s["repetitions"] == 2
    assert s["prefill_tok_s"] > 0 and s["generation_tok_s"] > 0
    for sample in res.samples:
        assert sample.generated_tokens >= 10
        span = sample.last_token_time - sample.first_token_time
        assert sample.generation_tok_s == pytest.approx((sample.generated_tokens - 1) / span)
        assert sample.prefill_tok_s == pytest.approx(32 / sample.prefill_s)
    recs = res.to_result_records()
    assert {r.metric for r in recs} == {"prefill_tok_s", "generation_tok_s"}
    assert all(r.unit == "tok/s" and r.direction == "higher" for r in recs)
