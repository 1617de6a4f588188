"""vLLM, SGLang and LLMPerf importers: the real files in shared/data/vllm_bench give the numbers
they print, and failed requests give failures, never values."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest
from bench_formats import ImportFormatError, detect_format, parse

from tests.conftest import SHARED_DATA
from tests.formats.records_helpers import one, values

VLLM = SHARED_DATA / "vllm_bench"
VLLM_JSONS = [
    "vllm_serving_llama33-70b_tp8_sharegpt_qps4.json",
    "vllm_serving_llama33-70b_tp4pp2_IB_sharegpt_qpsinf.json",
    "vllm_serving_llama33-70b_tp4pp2_noIB_sharegpt_qpsinf.json",
]
QPS4 = VLLM / VLLM_JSONS[0]
CONSOLE = VLLM / "vllm_benchmark_serving_console_output.txt"
SGLANG_70B = VLLM / "sglang_bench_serving_llama33-70b_h200_online_rate_sweep.jsonl"
LLMPERF_GROQ = VLLM / "llmperf_summary_groq_70b.json"

pytestmark = pytest.mark.skipif(not VLLM.is_dir(), reason=f"shared data not found at {VLLM}")


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


# ------------------------------------------------------------------------------ vLLM JSON


@pytest.mark.parametrize("name", VLLM_JSONS)
def test_vllm_result_json(name: str) -> None:
    text = (VLLM / name).read_text()
    raw = json.loads(text)
    assert detect_format(text, name) == "vllm"
    out = parse("auto", text, source_name=name)
    for key in (
        "mean_ttft_ms",
        "median_ttft_ms",
        "std_ttft_ms",
        "p99_ttft_ms",
        "mean_tpot_ms",
        "p99_itl_ms",
        "request_throughput",
        "output_throughput",
        "total_token_throughput",
        "duration",
        "completed",
        "total_input_tokens",
        "total_output_tokens",
    ):
        assert one(out, key) == raw[key]
    # These files predate vLLM's `failed` key: the count comes from the `errors` array.
    assert one(out, "failed_requests") == sum(1 for e in raw["errors"] if e) == 0
    rec = next(r for r in out.results if r.metric == "mean_ttft_ms")
    assert rec.direction == "lower" and rec.unit == "ms"
    assert rec.samples is not None and len(rec.samples) == raw["completed"]
    assert statistics.fmean(rec.samples) == pytest.approx(raw["mean_ttft_ms"], rel=1e-12)
    assert rec.params["request_rate"] == (
        raw["request_rate"] if isinstance(raw["request_rate"], float) else "inf"
    )
    assert next(r for r in out.results if r.metric == "output_throughput").direction == "higher"
    # the per-request arrays recompute the file's own aggregates
    assert out.meta["recomputed"]["mean_ttft_ms"] == pytest.approx(raw["mean_ttft_ms"], rel=1e-9)
    assert out.meta["recomputed"]["median_ttft_ms"] == pytest.approx(raw["median_ttft_ms"], rel=1e-9)
    assert out.meta["recomputed"]["mean_tpot_ms"] == pytest.approx(raw["mean_tpot_ms"], rel=1e-3)
    assert not out.failures


def _fail_requests(raw: dict[str, Any], indexes: list[int], *, failed_key: bool) -> dict[str, Any]:
    """`raw` as vLLM writes it when those requests fail: TTFT 0.0, no gaps, no output, an error."""
    data: dict[str, Any] = json.loads(json.dumps(raw))
    for i in indexes:
        data["ttfts"][i] = 0.0
        data["itls"][i] = []
        data["output_lens"][i] = 0
        data["errors"][i] = "ClientConnectorError: Cannot connect to host"
    data["completed"] = raw["completed"] - len(indexes)
    if failed_key:
        data["failed"] = len(indexes)
    return data


@pytest.mark.parametrize("failed_key", [True, False], ids=["failed-key", "errors-only"])
def test_vllm_failed_requests_are_counted_and_contribute_no_sample(failed_key: bool) -> None:
    raw = json.loads(QPS4.read_text())
    data = _fail_requests(raw, [3, 50, 120], failed_key=failed_key)
    out = parse("vllm", json.dumps(data))
    assert one(out, "failed_requests") == 3 and one(out, "completed") == 197
    (failure,) = out.failures
    assert failure.failure_class == "crash"
    assert failure.message.startswith("3 of 200 requests failed: ClientConnectorError")
    ok = [i for i in range(200) if i not in (3, 50, 120)]
    ttft = next(r for r in out.results if r.metric == "mean_ttft_ms")
    assert ttft.samples == [raw["ttfts"][i] * 1000 for i in ok]
    assert 0.0 not in ttft.samples
    tpot = next(r for r in out.results if r.metric == "mean_tpot_ms")
    assert tpot.samples is not None and len(tpot.samples) == len([i for i in ok if raw["output_lens"][i] > 1])


def test_vllm_run_with_no_completed_request_gives_only_a_failure() -> None:
    raw = json.loads(QPS4.read_text())
    data = _fail_requests(raw, list(range(200)), failed_key=True)
    data.update({k: 0.0 for k in data if k.endswith("_ms")})  # what vLLM writes for zero requests
    out = parse("vllm", json.dumps(data))
    assert out.results == []
    (failure,) = out.failures
    assert failure.failure_class == "crash" and "completed no request (200 failed)" in failure.message


def test_vllm_newer_keys_peak_throughput_concurrency_and_e2el() -> None:
    raw = json.loads(QPS4.read_text())
    latencies = [t + sum(gaps) for t, gaps in zip(raw["ttfts"], raw["itls"], strict=True)]
    newer = {
        **raw,
        "failed": 0,
        "max_output_tokens_per_s": 811.0,
        "max_concurrent_requests": 17,
        "latencies": latencies,
        "mean_e2el_ms": statistics.fmean(latencies) * 1000,
        "p99_e2el_ms": 25000.5,
    }
    out = parse("vllm", json.dumps(newer))
    assert one(out, "max_output_tokens_per_s") == 811.0
    assert one(out, "max_concurrent_requests") == 17
    peak = next(r for r in out.results if r.metric == "max_concurrent_requests")
    assert (peak.unit, peak.direction) == ("requests", "lower")
    e2el = next(r for r in out.results if r.metric == "mean_e2el_ms")
    assert e2el.samples == [x * 1000 for x in latencies]
    assert one(out, "p99_e2el_ms") == 25000.5
    assert one(out, "failed_requests") == 0 and not out.failures


# ---------------------------------------------------------------------------- vLLM console


def test_vllm_console_block() -> None:
    out = parse("auto", CONSOLE.read_text())
    assert one(out, "completed") == 10
    assert one(out, "duration") == 5.78
    assert one(out, "total_input_tokens") == 1369
    assert one(out, "total_output_tokens") == 2212
    assert one(out, "request_throughput") == 1.73
    assert one(out, "output_throughput") == 382.89
    assert one(out, "mean_ttft_ms") == 71.54
    assert one(out, "median_tpot_ms") == 7.96
    assert one(out, "p99_itl_ms") == 8.39
    assert one(out, "total_token_throughput") == 619.85
    assert len(out.results) == 16 and not out.failures  # this older vLLM prints no failed line


def _newer_console(failed: int, successful: int = 10) -> str:
    """The real block in the layout of a current vLLM, which prints failures and peaks too."""
    text = CONSOLE.read_text().replace(
        "Successful requests:                     10        \n",
        f"Successful requests:                     {successful}\n"
        f"Failed requests:                         {failed}\n"
        "Maximum request concurrency:             8\n"
        "Request rate configured (RPS):           4.00\n",
    )
    text = text.replace(
        "Total Token throughput (tok/s):          619.85    \n",
        "Peak output token throughput (tok/s):    512.00\n"
        "Peak concurrent requests:                8.00\n"
        "Total token throughput (tok/s):          619.85\n",
    )
    rule = "=" * 50
    assert text.rstrip().endswith(rule)
    e2el = (
        "----------------End-to-end Latency----------------\n"
        "Mean E2EL (ms):                          1234.50\n"
        "Median E2EL (ms):                        1200.25\n"
        "P99 E2EL (ms):                           1500.75\n"
    )
    return text.rstrip()[: -len(rule)] + e2el + rule + "\n"


def test_vllm_console_failed_requests_and_peaks() -> None:
    out = parse("auto", _newer_console(failed=2))
    assert one(out, "failed_requests") == 2
    assert one(out, "max_output_tokens_per_s") == 512.0
    assert one(out, "max_concurrent_requests") == 8.0
    assert one(out, "total_token_throughput") == 619.85
    assert one(out, "mean_e2el_ms") == 1234.5 and one(out, "p99_e2el_ms") == 1500.75
    rec = next(r for r in out.results if r.metric == "mean_ttft_ms")
    assert rec.params == {"tool": "vllm-bench-serve", "max_concurrency": 8, "request_rate": 4.0}
    (failure,) = out.failures
    assert failure.failure_class == "crash" and failure.message == "2 of 12 requests failed"


def test_vllm_console_with_nothing_completed_and_several_blocks() -> None:
    dead = parse("vllm", _newer_console(failed=10, successful=0))
    assert dead.results == []
    assert [f.message for f in dead.failures] == ["vLLM benchmark completed no request (10 failed)"]

    two = parse(
        "vllm",
        "Traffic request rate: 2.0\n"
        + CONSOLE.read_text()
        + "Traffic request rate: inf\n"
        + _newer_console(0),
    )
    rates = [r.params.get("request_rate") for r in two.results if r.metric == "mean_ttft_ms"]
    assert rates == [2.0, 4.0]  # the second block prints its configured rate, which wins
    assert two.meta["runs"] == 2 and not two.failures


# ------------------------------------------------------------------- vLLM nightly table


def test_vllm_nightly_summary_table() -> None:
    path = VLLM / "vllm_nightly_style_summary_tables_tp8.json"
    rows = json.loads(path.read_text())
    out = parse("auto", path.read_text(), source_name=path.name)
    assert out.meta["format"] == "vllm" and len(out.results) == 12 * len(rows)
    for row in rows:
        name = row["Test name"]
        assert one(out, "request_throughput", test_name=name) == row["Tput (req/s)"]
        assert one(out, "output_throughput", test_name=name) == row["Output Tput (tok/s)"]
        assert one(out, "total_token_throughput", test_name=name) == row["Total Tput (tok/s)"]
        for stat in ("Mean", "Median", "P99"):
            for metric in ("TTFT", "TPOT", "ITL"):
                got = one(out, f"{stat.lower()}_{metric.lower()}_ms", test_name=name)
                assert got == row[f"{stat} {metric} (ms)"]
    first = out.results[0]
    assert first.benchmark == "vllm-nightly:tp8_pp1_qps_01"
    assert first.params["gpu"] == "1xStandard_ND96asr_v4 x 1" and first.params["num_prompts"] == 200


# -------------------------------------------------------------------------------- SGLang


def test_sglang_params_come_from_each_lines_own_dataset() -> None:
    lines = _jsonl(SGLANG_70B)
    out = parse("auto", SGLANG_70B.read_text(), source_name=SGLANG_70B.name)
    for line in lines:
        rate, dataset = line["request_rate"], line["dataset_name"]
        recs = [r for r in out.results if r.params["request_rate"] == rate and r.params["dataset"] == dataset]
        params = recs[0].params
        if dataset == "random":
            assert (params["input_len"], params["output_len"], params["range_ratio"]) == (1024, 1024, 0.0)
        else:
            # every sharegpt line also says random_input_len 1024: sharegpt never read it
            assert "input_len" not in params and "output_len" not in params and "range_ratio" not in params
        got = {r.metric: r.value for r in recs}
        for key in (
            "total_input_tokens",
            "total_output_tokens",
            "total_output_tokens_retokenized",
            "completed",
        ):
            assert got[key] == line[key]
        assert got["mean_input_tokens"] == line["total_input_tokens"] / line["completed"]
        assert got["mean_output_tokens"] == line["total_output_tokens"] / line["completed"]
        assert got["median_e2el_ms"] == line["median_e2e_latency_ms"]
        assert got["median_itl_ms"] == line["median_itl_ms"]
        assert got["duration"] == line["duration"]
    # the sharegpt prompts averaged 224 tokens in and 189 out, not the 1024 / 1024 the line says
    assert round(one(out, "mean_input_tokens", dataset="sharegpt", request_rate=4.0)) == 224
    assert round(one(out, "mean_output_tokens", dataset="sharegpt", request_rate=4.0)) == 189


def test_sglang_reruns_merge_and_failed_lines_give_no_numbers() -> None:
    lines = _jsonl(SGLANG_70B)
    out = parse("sglang", SGLANG_70B.read_text())
    assert one(out, "output_throughput", request_rate=1.0) == lines[0]["output_throughput"]
    assert one(out, "median_ttft_ms", request_rate=2.0) == lines[1]["median_ttft_ms"]
    assert next(r for r in out.results if r.params["dataset"] == "sharegpt").benchmark == "sglang:sharegpt"
    rt = one(out, "request_throughput", request_rate=1.0)
    assert rt == pytest.approx(lines[0]["completed"] / lines[0]["duration"])
    assert {r.params["request_rate"] for r in out.results} == {1.0, 2.0, 4.0, 8.0, 16.0}
    # a real re-run (same settings twice) is one record: the mean, with both values as samples
    rerun = parse(
        "sglang", SGLANG_70B.read_text() + json.dumps({**lines[0], "output_throughput": 600.0}) + "\n"
    )
    rec = next(
        r for r in rerun.results if r.metric == "output_throughput" and r.params["request_rate"] == 1.0
    )
    assert rec.samples == [lines[0]["output_throughput"], 600.0]
    assert rec.value == pytest.approx(statistics.fmean(rec.samples))
    # a run that completed nothing prints zeros: they are not stored
    dead = {**lines[0], "request_rate": 32.0, "completed": 0, "output_throughput": 0.0, "median_ttft_ms": 0.0}
    with_dead = parse("sglang", SGLANG_70B.read_text() + json.dumps(dead) + "\n")
    assert not values(with_dead, "output_throughput", request_rate=32.0)
    assert [f.params["request_rate"] for f in with_dead.failures] == [32.0]


# ------------------------------------------------------------------------------- LLMPerf


def test_llmperf_summary_values_in_vllm_names_and_ms() -> None:
    raw = json.loads(LLMPERF_GROQ.read_text())
    out = parse("auto", LLMPERF_GROQ.read_text(), source_name=LLMPERF_GROQ.name)
    assert out.meta["format"] == "llmperf"
    assert one(out, "mean_ttft_ms") == pytest.approx(raw["results_ttft_s_mean"] * 1000)
    assert one(out, "p25_ttft_ms") == pytest.approx(raw["results_ttft_s_quantiles_p25"] * 1000)
    assert one(out, "max_ttft_ms") == pytest.approx(raw["results_ttft_s_max"] * 1000)
    assert one(out, "p99_e2el_ms") == pytest.approx(raw["results_end_to_end_latency_s_quantiles_p99"] * 1000)
    assert one(out, "output_throughput") == raw["results_mean_output_throughput_token_per_s"]
    assert one(out, "request_throughput") == pytest.approx(raw["results_num_completed_requests_per_min"] / 60)
    assert (
        one(out, "mean_request_output_throughput")
        == raw["results_request_output_throughput_token_per_s_mean"]
    )
    assert one(out, "mean_output_tokens") == 150.0 and one(out, "min_input_tokens") == 550.0
    assert one(out, "completed") == 150 and one(out, "failed_requests") == 0 and not out.failures
    assert next(iter(out.results)).params["concurrency"] == 5


def test_llmperf_inter_token_latency_is_not_stored_as_an_itl() -> None:
    raw = json.loads(LLMPERF_GROQ.read_text())
    out = parse("llmperf", LLMPERF_GROQ.read_text())
    assert not [r.metric for r in out.results if r.metric.endswith("_itl_ms")]
    assert one(out, "median_e2el_per_output_token_ms") == pytest.approx(5.320808651546638)
    assert one(out, "mean_e2el_per_output_token_ms") == pytest.approx(
        raw["results_inter_token_latency_s_mean"] * 1000
    )
    # What the figure is, from the same run's per-request records: close to E2E / tokens, and
    # far from vLLM's gap between tokens after the first one.
    responses = json.loads((VLLM / "llmperf_individual_responses_groq_70b.json").read_text())
    ok = [r for r in responses if r["error_code"] is None]
    assert statistics.fmean(r["inter_token_latency_s"] for r in ok) == pytest.approx(
        raw["results_inter_token_latency_s_mean"], rel=1e-12
    )
    e2e_per_token = statistics.fmean(r["end_to_end_latency_s"] / r["number_output_tokens"] for r in ok)
    after_first = statistics.fmean(
        (r["end_to_end_latency_s"] - r["ttft_s"]) / (r["number_output_tokens"] - 1) for r in ok
    )
    assert raw["results_inter_token_latency_s_mean"] == pytest.approx(e2e_per_token, rel=0.02)
    assert raw["results_inter_token_latency_s_mean"] > after_first * 1.2


def test_llmperf_errors_are_failures_and_no_completion_gives_no_numbers() -> None:
    raw = json.loads(LLMPERF_GROQ.read_text())
    some = {**raw, "results_number_errors": 4, "results_error_code_frequency": "{429: 3, 500: 1}"}
    out = parse("llmperf", json.dumps(some))
    assert one(out, "failed_requests") == 4
    (failure,) = out.failures
    assert failure.message.startswith("4 of 154 requests failed") and failure.log_excerpt == "429: 3\n500: 1"
    none = {**some, "results_num_completed_requests": 0}
    dead = parse("llmperf", json.dumps(none))
    assert dead.results == [] and "completed no request" in dead.failures[0].message


def test_llmperf_individual_responses_are_refused_clearly() -> None:
    with pytest.raises(ImportFormatError, match="LLMPerf individual responses.*summary JSON"):
        parse("auto", (VLLM / "llmperf_individual_responses_groq_70b.json").read_text())
