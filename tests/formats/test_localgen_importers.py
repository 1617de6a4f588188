"""llama-bench, exo and mlx_lm importers on the real files in shared/data."""

from __future__ import annotations

import json
import statistics
from collections import Counter

import pytest
from bench_formats import ImportFormatError, detect_format, parse

from tests.conftest import SHARED_DATA
from tests.formats.records_helpers import one

DATA = SHARED_DATA
LLAMA = DATA / "llama_bench"
MLX = DATA / "mlx"

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data not found at {DATA}")


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


def test_llama_bench_jsonl_repeated_runs_stay_runs() -> None:
    path = LLAMA / "llama-bench_jsonl_raw_runs_llama2-7b-Q4_0_strixhalo.jsonl"
    records = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    out = parse("auto", path.read_text(), source_name=path.name)
    assert out.meta["records"] == len(records) == 364
    # One result per record, in file order, each with the run's own repetitions and spread.
    assert len(out.results) == 364
    for rec, raw in zip(out.results, records, strict=True):
        assert rec.value == raw["avg_ts"]
        assert rec.samples == raw["samples_ts"]
        assert rec.stats == {"mean": raw["avg_ts"], "std": raw["stddev_ts"]}
        assert (rec.params["n_prompt"], rec.params["n_gen"]) == (raw["n_prompt"], raw["n_gen"])
        assert rec.params["build"] == raw["build_commit"]
    # 52 tests were run four times each (the merge of old kept 52 means and lost both).
    series: dict[str, list[int]] = {}
    for i, rec in enumerate(out.results):
        key = json.dumps([rec.benchmark, rec.metric, rec.params], sort_keys=True)
        series.setdefault(key, []).append(i)
    assert sorted(Counter(len(v) for v in series.values()).items()) == [(1, 156), (4, 52)]
    pp1 = next(v for v in series.values() if len(v) == 4 and out.results[v[0]].params["test"] == "pp1")
    assert [records[i]["test_time"] for i in pp1] == [
        "2025-08-04T10:37:05Z",
        "2025-08-04T11:30:34Z",
        "2025-08-04T13:09:16Z",
        "2025-08-04T14:03:27Z",
    ]
    assert [out.results[i].stats for i in pp1][0] == {"mean": 50.041847, "std": 0.083774}


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
        gen = one(out, "generation_tokens_per_s", prompt_id=prompt)
        assert gen == pytest.approx(statistics.fmean(r["generation_tps"] for r in reqs))
        ttft = one(out, "ttft_ms", prompt_id=prompt)
        assert ttft == pytest.approx(statistics.fmean(r["ttft_ms"] for r in reqs))
    mean_all = one(out, "mean_generation_tokens_per_s")
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
    assert one(out, "generation_tokens_per_s") == 205.099
    assert one(out, "peak_memory_gb") == 3.285


def test_mlx_lm_benchmark_newer_header() -> None:
    out = parse(
        "auto", (MLX / "mlx_lm_benchmark_pr1010_macbook_air_m4_no_delay_thermal_throttling.txt").read_text()
    )
    g = next(r for r in out.results if r.metric == "generation_tokens_per_s")
    assert g.value == 18.859 and g.params["batch_size"] == 1 and g.params["generation_tokens"] == 2048
    assert g.samples is not None and g.samples[0] == 21.086 and len(g.samples) == 5


def test_mlx_lm_pre_post_notes() -> None:
    out = parse("mlx-lm", (MLX / "mlx_lm_benchmark_pre_post_pr3077_h100_b200.txt").read_text())
    v = one(
        out, "generation_tokens_per_s", model="Qwen/Qwen3-4B-Thinking-2507", hardware="H100", label="Post"
    )
    assert v == 209.213
    v = one(
        out, "prefill_tokens_per_s", model="Qwen/Qwen3-30B-A3B-Thinking-2507", hardware="B200", label="Pre"
    )
    assert v == 7885.334
    assert len(out.results) == 24


def test_mlx_lm_generate_footer() -> None:
    out = parse("auto", (MLX / "mlx_lm_generate_verbose_issue1029_mac_mini_m4pro.txt").read_text())
    assert one(out, "prefill_tokens_per_s") == 261.786
    assert one(out, "generation_tokens_per_s", generation_tokens=1000) == 23.146
    assert one(out, "peak_memory_gb") == 13.523
    assert out.results[0].params["model"] == "mlx-community/Meta-Llama-3.1-8B-Instruct-4bit"


def test_unsupported_and_mismatched_inputs_raise() -> None:
    with pytest.raises(ImportFormatError, match="Markdown document"):
        parse("auto", (MLX / "mlx_lm_BENCHMARKS.md").read_text(), source_name="BENCHMARKS.md")
    with pytest.raises(ImportFormatError):
        parse("vllm", (LLAMA / "llama-bench_md_gptoss120b_vulkan_rpc_4nodes.txt").read_text())
    with pytest.raises(ImportFormatError, match="not JSON"):
        parse("exo", "{not json")
    with pytest.raises(ImportFormatError, match="unknown format"):
        parse("csv", "a,b\n1,2\n")
