"""vLLM, SGLang, LLMPerf, llama-bench, exo and mlx_lm importers on the real files in shared/data."""

from __future__ import annotations

import json
import statistics
from typing import Any

import pytest
from bench_formats import ImportFormatError, ImportOutcome, detect_format, parse

from tests.conftest import SHARED_DATA

DATA = SHARED_DATA
VLLM = DATA / "vllm_bench"
LLAMA = DATA / "llama_bench"
MLX = DATA / "mlx"

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data not found at {DATA}")


def _values(outcome: ImportOutcome, metric: str, **params: Any) -> list[float]:
    return [
        r.value
        for r in outcome.results
        if r.metric == metric and all(r.params.get(k) == v for k, v in params.items())
    ]


def _one(outcome: ImportOutcome, metric: str, **params: Any) -> float:
    vals = _values(outcome, metric, **params)
    assert len(vals) == 1, (metric, params, vals)
    return vals[0]


# ---------------------------------------------------------------------------------------- vLLM


@pytest.mark.parametrize(
    "name",
    [
        "vllm_serving_llama33-70b_tp8_sharegpt_qps4.json",
        "vllm_serving_llama33-70b_tp4pp2_IB_sharegpt_qpsinf.json",
        "vllm_serving_llama33-70b_tp4pp2_noIB_sharegpt_qpsinf.json",
    ],
)
def test_vllm_result_json(name: str) -> None:
    text = (VLLM / name).read_text()
    raw = json.loads(text)
    assert detect_format(text, name) == "vllm"
    out = parse("auto", text, source_name=name)
    for key in (
        "mean_ttft_ms",
        "median_ttft_ms",
        "p99_ttft_ms",
        "mean_tpot_ms",
        "p99_itl_ms",
        "request_throughput",
        "output_throughput",
        "total_token_throughput",
    ):
        assert _one(out, key) == raw[key]
    assert _one(out, "mean_ttft_ms") > 0
    rec = next(r for r in out.results if r.metric == "mean_ttft_ms")
    assert rec.direction == "lower" and rec.unit == "ms"
    assert rec.samples is not None and len(rec.samples) == raw["completed"]
    assert rec.params["request_rate"] == (
        raw["request_rate"] if isinstance(raw["request_rate"], float) else "inf"
    )
    assert next(r for r in out.results if r.metric == "output_throughput").direction == "higher"
    # the per-request arrays recompute the file's own aggregates
    assert out.meta["recomputed"]["mean_ttft_ms"] == pytest.approx(raw["mean_ttft_ms"], rel=1e-9)
    assert out.meta["recomputed"]["median_ttft_ms"] == pytest.approx(raw["median_ttft_ms"], rel=1e-9)
    assert out.meta["recomputed"]["mean_tpot_ms"] == pytest.approx(raw["mean_tpot_ms"], rel=1e-3)
    assert not out.failures


def test_vllm_console_block() -> None:
    out = parse("auto", (VLLM / "vllm_benchmark_serving_console_output.txt").read_text())
    assert _one(out, "completed") == 10
    assert _one(out, "request_throughput") == 1.73
    assert _one(out, "mean_ttft_ms") == 71.54
    assert _one(out, "p99_itl_ms") == 8.39
    assert _one(out, "total_token_throughput") == 619.85


# -------------------------------------------------------------------------------------- SGLang


def test_sglang_jsonl_rate_sweep_merges_reruns() -> None:
    path = VLLM / "sglang_bench_serving_llama33-70b_h200_online_rate_sweep.jsonl"
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    assert detect_format(path.read_text(), path.name) == "sglang"
    out = parse("auto", path.read_text(), source_name=path.name)
    assert _one(out, "output_throughput", request_rate=1.0) == lines[0]["output_throughput"]
    assert _one(out, "median_ttft_ms", request_rate=2.0) == lines[1]["median_ttft_ms"]
    # rate 4 was run on two datasets: two benchmarks, not one mixed series
    r4 = {
        r.params["dataset"]: r.value
        for r in out.results
        if r.metric == "output_throughput" and r.params["request_rate"] == 4.0
    }
    assert r4 == {x["dataset_name"]: x["output_throughput"] for x in lines if x["request_rate"] == 4.0}
    assert next(r for r in out.results if r.params["dataset"] == "sharegpt").benchmark == "sglang:sharegpt"
    # a real re-run (same line twice) becomes one record: the mean, with both values as samples
    rerun = parse("sglang", path.read_text() + json.dumps({**lines[0], "output_throughput": 600.0}) + "\n")
    rec = next(
        r for r in rerun.results if r.metric == "output_throughput" and r.params["request_rate"] == 1.0
    )
    assert rec.samples == [lines[0]["output_throughput"], 600.0]
    assert rec.value == pytest.approx(statistics.fmean(rec.samples))
    rt = _one(out, "request_throughput", request_rate=1.0)
    assert rt == pytest.approx(lines[0]["completed"] / lines[0]["duration"])
    assert {r.params["request_rate"] for r in out.results} == {1.0, 2.0, 4.0, 8.0, 16.0}


# ------------------------------------------------------------------------------------- LLMPerf


def test_llmperf_summary_in_vllm_names_and_ms() -> None:
    path = VLLM / "llmperf_summary_groq_70b.json"
    raw = json.loads(path.read_text())
    out = parse("auto", path.read_text(), source_name=path.name)
    assert out.meta["format"] == "llmperf"
    assert _one(out, "mean_ttft_ms") == pytest.approx(raw["results_ttft_s_mean"] * 1000)
    assert _one(out, "p99_e2el_ms") == pytest.approx(raw["results_end_to_end_latency_s_quantiles_p99"] * 1000)
    assert _one(out, "median_itl_ms") == pytest.approx(5.320808651546638)
    assert _one(out, "output_throughput") == pytest.approx(441.84737788500206)
    assert _one(out, "request_throughput") == pytest.approx(176.73895115400083 / 60)
    assert next(iter(out.results)).params["concurrency"] == 5


def test_llmperf_individual_responses_are_refused_clearly() -> None:
    with pytest.raises(ImportFormatError, match="summary"):
        parse("auto", (VLLM / "llmperf_individual_responses_groq_70b.json").read_text())


# --------------------------------------------------------------------------------- llama-bench


def test_llama_bench_json_array() -> None:
    path = LLAMA / "llama-bench_json_rtx4080_qwen2.5-7b_upstream_doc_example.json"
    out = parse("auto", path.read_text(), source_name=path.name)
    pp = next(r for r in out.results if r.metric == "prefill_tokens_per_s")
    tg = next(r for r in out.results if r.metric == "generation_tokens_per_s")
    assert (pp.value, pp.params["test"]) == (7100.002165, "pp512")
    assert (tg.value, tg.params["test"]) == (118.881588, "tg128")
    assert pp.samples == [6863.1, 7147.55, 7136.37, 7115.79, 7237.21]
    assert tg.stats == {"mean": 118.881588, "std": 1.041811}
    assert pp.params["backends"] == "CUDA" and pp.benchmark == "llama-bench:qwen2 7B Q4_K - Medium"


def test_llama_bench_jsonl_raw_runs() -> None:
    path = LLAMA / "llama-bench_jsonl_raw_runs_llama2-7b-Q4_0_strixhalo.jsonl"
    records = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    out = parse("auto", path.read_text(), source_name=path.name)
    assert out.meta["records"] == len(records) == 364
    first = records[0]
    rec = next(
        r
        for r in out.results
        if r.params["test"] == "pp1"
        and r.params.get("build") == first["build_commit"]
        and r.params["backends"] == first["backends"]
        and r.params["flash_attn"] == first["flash_attn"]
    )
    same = [
        x["avg_ts"]
        for x in records
        if x["n_prompt"] == 1
        and x["n_gen"] == 0
        and x["build_commit"] == first["build_commit"]
        and x["backends"] == first["backends"]
        and x["flash_attn"] == first["flash_attn"]
    ]
    assert rec.value == pytest.approx(statistics.fmean(same))
    assert {r.params["build"] for r in out.results} == {x["build_commit"] for x in records}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("llama-bench_md_gptoss120b_vulkan_strixhalo_1node.txt", {"pp512": 404.67, "tg128": 33.50}),
        ("llama-bench_md_gptoss120b_vulkan_rpc_4nodes.txt", {"pp512": 368.13, "tg128": 21.61}),
        (
            "llama-bench_md_metal_mac-studio_llama3.3-70b_issue-excerpt.txt",
            {"pp512": 162.30, "pp4096": 156.67, "tg128": 14.41, "pp4096+tg128": 119.34},
        ),
    ],
)
def test_llama_bench_markdown(name: str, expected: dict[str, float]) -> None:
    text = (LLAMA / name).read_text()
    assert detect_format(text, name) == "llama-bench"
    out = parse("auto", text, source_name=name)
    got = {r.params["test"]: r.value for r in out.results}
    assert got == expected
    assert next(r for r in out.results if r.params["test"] == "tg128").metric == "generation_tokens_per_s"


def test_llama_bench_markdown_env_ab_sweep() -> None:
    out = parse(
        "llama-bench",
        (LLAMA / "llama-bench_md_rocm_gfx1151_llama2-7b_quant_sweep_hipblaslt_ab.txt").read_text(),
    )
    assert len(out.results) == 16
    base = [r for r in out.results if r.params["model"] == "llama 7B Q4_0" and r.params["test"] == "pp512"]
    by_env = {r.params.get("env", ""): r.value for r in base}
    assert by_env == {"": 878.31, "ROCBLAS_USE_HIPBLASLT=1": 972.75}
    f16 = next(
        r
        for r in out.results
        if r.params["model"] == "llama 7B F16" and r.params["test"] == "tg128" and "env" not in r.params
    )
    assert f16.value == 13.91 and f16.stats == {"mean": 13.91, "std": 0.02}
    assert out.meta["builds"] == ["4d74393bc"] * 8


# ----------------------------------------------------------------------------------------- exo


@pytest.mark.parametrize("name", sorted(p.name for p in (MLX / "exo").glob("*.json")))
def test_exo_bench(name: str) -> None:
    text = (MLX / "exo" / name).read_text()
    raw = json.loads(text)
    out = parse("auto", text, source_name=name)
    assert out.meta["format"] == "exo"
    for prompt in {r["prompt_id"] for r in raw["requests"]}:
        reqs = [r for r in raw["requests"] if r["prompt_id"] == prompt and not r["error"]]
        gen = _one(out, "generation_tokens_per_s", prompt_id=prompt)
        assert gen == pytest.approx(statistics.fmean(r["generation_tps"] for r in reqs))
        ttft = _one(out, "ttft_ms", prompt_id=prompt)
        assert ttft == pytest.approx(statistics.fmean(r["ttft_ms"] for r in reqs))
    mean_all = _one(out, "mean_generation_tokens_per_s")
    assert mean_all == pytest.approx(statistics.fmean(r["generation_tps"] for r in raw["requests"]))
    assert all(r.params["use_drafter"] == raw["use_drafter"] for r in out.results)


def test_exo_errors_become_failures() -> None:
    raw = json.loads((MLX / "exo" / "exo_bench_qwen3.5-4b-mlx-8bit_dflash.json").read_text())
    raw["requests"][0]["error"] = "connection reset"
    out = parse("exo", json.dumps(raw))
    assert len(out.failures) == 1 and "connection reset" in out.failures[0].message


# -------------------------------------------------------------------------------------- mlx_lm


def test_mlx_lm_benchmark_trials_and_averages() -> None:
    out = parse("auto", (MLX / "mlx_lm_benchmark_pr396_example.txt").read_text())
    assert out.meta["format"] == "mlx-lm"
    pp = next(r for r in out.results if r.metric == "prefill_tokens_per_s")
    assert pp.value == 2902.166
    assert pp.samples == [2902.212, 2901.392, 2902.077, 2902.258, 2902.890]
    assert pp.params["prompt_tokens"] == 2048 and pp.params["generation_tokens"] == 128
    assert _one(out, "generation_tokens_per_s") == 205.099
    assert _one(out, "peak_memory_gb") == 3.285


def test_mlx_lm_benchmark_newer_header() -> None:
    out = parse(
        "auto", (MLX / "mlx_lm_benchmark_pr1010_macbook_air_m4_no_delay_thermal_throttling.txt").read_text()
    )
    g = next(r for r in out.results if r.metric == "generation_tokens_per_s")
    assert g.value == 18.859 and g.params["batch_size"] == 1 and g.params["generation_tokens"] == 2048
    assert g.samples is not None and g.samples[0] == 21.086 and len(g.samples) == 5


def test_mlx_lm_pre_post_notes() -> None:
    out = parse("mlx-lm", (MLX / "mlx_lm_benchmark_pre_post_pr3077_h100_b200.txt").read_text())
    v = _one(
        out, "generation_tokens_per_s", model="Qwen/Qwen3-4B-Thinking-2507", hardware="H100", label="Post"
    )
    assert v == 209.213
    v = _one(
        out, "prefill_tokens_per_s", model="Qwen/Qwen3-30B-A3B-Thinking-2507", hardware="B200", label="Pre"
    )
    assert v == 7885.334
    assert len(out.results) == 24


def test_mlx_lm_generate_footer() -> None:
    out = parse("auto", (MLX / "mlx_lm_generate_verbose_issue1029_mac_mini_m4pro.txt").read_text())
    assert _one(out, "prefill_tokens_per_s") == 261.786
    assert _one(out, "generation_tokens_per_s", generation_tokens=1000) == 23.146
    assert _one(out, "peak_memory_gb") == 13.523
    assert out.results[0].params["model"] == "mlx-community/Meta-Llama-3.1-8B-Instruct-4bit"


def test_unsupported_and_mismatched_inputs_raise() -> None:
    with pytest.raises(ImportFormatError):
        parse("auto", (MLX / "mlx_lm_BENCHMARKS.md").read_text(), source_name="BENCHMARKS.md")
    with pytest.raises(ImportFormatError):
        parse("vllm", (LLAMA / "llama-bench_md_gptoss120b_vulkan_rpc_4nodes.txt").read_text())
    with pytest.raises(ImportFormatError, match="not JSON"):
        parse("exo", "{not json")
    with pytest.raises(ImportFormatError, match="unknown format"):
        parse("csv", "a,b\n1,2\n")
