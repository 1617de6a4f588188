"""Recomputing real vLLM result files from their own per-request arrays gives their numbers."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from bench_runner.serving.metrics import recompute_vllm_result, to_result_records


def shared_data() -> Path:
    env = os.environ.get("BENCH_SHARED_DATA")
    if env:
        return Path(env)
    # tests/runners/serving/<this file> -> repo root is parents[3]; shared/ sits beside the repo.
    return Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


def vllm_files() -> list[Path]:
    folder = shared_data() / "vllm_bench"
    files = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and {"ttfts", "itls", "output_lens"} <= data.keys():
            files.append(path)
    return files


FILES = vllm_files()


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b) if b else abs(a)


def test_shared_vllm_files_found() -> None:
    # The three full result files of the shared data set; a missing folder must fail, not skip.
    assert len(FILES) >= 3, f"no vLLM result files with per-request arrays under {shared_data()}"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_recompute_matches_file(path: Path) -> None:
    data: dict[str, Any] = json.loads(path.read_text())
    got = recompute_vllm_result(data, percentiles=(99,))
    assert got["completed"] == data["completed"]
    assert got["total_input_tokens"] == data["total_input_tokens"]
    assert got["total_output_tokens"] == data["total_output_tokens"]
    for key in ("request_throughput", "output_throughput", "total_token_throughput"):
        assert rel(got[key], data[key]) < 1e-9, key
    for name in ("ttft", "itl"):
        for stat in ("mean", "median", "std", "p99"):
            key = f"{stat}_{name}_ms"
            assert rel(got[key], data[key]) < 1e-9, (key, got[key], data[key])
    # TPOT uses each request's E2E latency, which vLLM does not store. Rebuilt as TTFT + sum(ITL)
    # it differs from vLLM's by the gap between the two perf_counter() reads vLLM makes at the
    # first token (well under 10 us per request), so the agreement is ~1e-7, not 1e-9.
    for stat in ("mean", "median", "std", "p99"):
        key = f"{stat}_tpot_ms"
        assert rel(got[key], data[key]) < 1e-5, (key, got[key], data[key])
        assert abs(got[key] - data[key]) < 0.01  # ms


def test_recompute_detects_a_changed_array() -> None:
    data = json.loads(FILES[0].read_text())
    data["ttfts"][0] += 0.5  # half a second more on one request moves the mean
    got = recompute_vllm_result(data, percentiles=(99,))
    assert rel(got["mean_ttft_ms"], data["mean_ttft_ms"]) > 1e-4


def test_records_from_vllm_file_have_units_and_directions() -> None:
    data = json.loads(FILES[0].read_text())
    records = to_result_records(data, suite="serving", benchmark="vllm-file", params={"qps": "inf"})
    by_metric = {r.metric: r for r in records}
    assert by_metric["mean_ttft_ms"].unit == "ms" and by_metric["mean_ttft_ms"].direction == "lower"
    assert by_metric["mean_ttft_ms"].value == data["mean_ttft_ms"]
    assert by_metric["mean_ttft_ms"].samples is not None
    assert len(by_metric["mean_ttft_ms"].samples) == len(data["ttfts"])
    assert by_metric["p99_itl_ms"].value == data["p99_itl_ms"]
    assert by_metric["request_throughput"].unit == "req/s"
    assert by_metric["output_throughput"].unit == "tok/s"
    assert by_metric["output_throughput"].direction == "higher"
    # vLLM files have no goodput (its key is None) -> no record rather than a bogus zero.
    assert "request_goodput" not in by_metric
