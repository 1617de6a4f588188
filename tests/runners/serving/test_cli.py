"""The ``bench-runner serve-bench`` and ``local-gen`` subcommands, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench_runner.cli import build_parser
from bench_runner.serving.scripted_server import ScriptedServerProcess


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServerProcess]:
    with ScriptedServerProcess(busy=False) as srv:
        yield srv


def test_subcommands_registered() -> None:
    parser = build_parser()
    args = parser.parse_args(["serve-bench", "--base-url", "http://x", "--concurrency", "1,2"])
    assert args.command == "serve-bench" and args.concurrency == "1,2"
    assert parser.parse_args(["local-gen", "--in-process"]).command == "local-gen"


def test_serve_bench_cli_sweep_writes_results_and_records(
    server: ScriptedServerProcess, tmp_path: Path
) -> None:
    result_file, records_file = tmp_path / "result.json", tmp_path / "records.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench_runner.cli", "serve-bench", "--base-url", server.base_url,
         "--model", "scripted", "--input-len", "8", "--output-len", "6", "--num-prompts", "6",
         "--concurrency", "1,3", "--goodput", "ttft:1000", "tpot:100", "--percentiles", "50,99",
         "--result-file", str(result_file), "--records-file", str(records_file),
         "--benchmark-name", "scripted-8x6", "--no-server-tokenizer"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Serving Benchmark Result" in proc.stdout and "Mean TTFT (ms):" in proc.stdout
    assert "[serve-bench] finished: 6/6 requests" in proc.stderr
    docs = json.loads(result_file.read_text())
    assert [d["max_concurrency"] for d in docs] == [1, 3]
    for d in docs:
        assert d["completed"] == 6 and d["failed"] == 0 and d["total_output_tokens"] == 36
        assert d["request_goodput"] == pytest.approx(d["request_throughput"])  # all within SLOs
        assert 0 < d["goodput_ratio"] <= 1.0
        assert {"p50_ttft_ms", "p99_ttft_ms", "p99_e2el_ms"} <= d.keys()
    # Concurrency 3 finishes the same work faster than 1 on a server that streams in parallel.
    assert docs[1]["request_throughput"] > docs[0]["request_throughput"]
    records = json.loads(records_file.read_text())
    names = {r["benchmark"] for r in records}
    assert names == {"scripted-8x6-c1", "scripted-8x6-c3"}
    ttft = next(r for r in records if r["metric"] == "mean_ttft_ms" and r["benchmark"].endswith("c3"))
    assert ttft["unit"] == "ms" and ttft["direction"] == "lower" and len(ttft["samples"]) == 6
    assert ttft["params"]["concurrency"] == 3 and ttft["params"]["isl"] == 8


def test_serve_bench_cli_client_queue_shortfall_and_goodput_ratio(
    server: ScriptedServerProcess, tmp_path: Path
) -> None:
    result_file, records_file = tmp_path / "result.json", tmp_path / "records.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench_runner.cli", "serve-bench", "--base-url", server.base_url,
         "--input-len", "16", "--output-len", "4", "--num-prompts", "4", "--shared-prefix-len", "6",
         "--best-request-throughput", "1000", "--no-server-tokenizer", "--no-progress",
         "--result-file", str(result_file), "--records-file", str(records_file)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Client Queue (issue to socket)" in proc.stdout and "Mean Client Queue (ms):" in proc.stdout
    assert "Requests short of output length:" in proc.stdout
    doc = json.loads(result_file.read_text())
    assert doc["workload"]["shared_prefix_len"] == 6
    assert doc["goodput_ratio"] == pytest.approx(doc["request_throughput"] / 1000)
    assert doc["goodput_ratio_reference"] == {"request_throughput": 1000.0, "source": "given"}
    assert doc["short_requests"] == 0
    metrics = {r["metric"] for r in json.loads(records_file.read_text())}
    assert {"mean_client_queue_ms", "short_requests", "goodput_ratio"} <= metrics


def test_serve_bench_cli_reports_failures(tmp_path: Path) -> None:
    # Nothing listens there: every request fails, the run still completes and says so.
    proc = subprocess.run(
        [sys.executable, "-m", "bench_runner.cli", "serve-bench", "--base-url", "http://127.0.0.1:9",
         "--num-prompts", "3", "--no-server-tokenizer", "--warmup", "0", "--no-progress",
         "--result-file", str(tmp_path / "r.json")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["completed"] == 0 and doc["failed"] == 3 and all(doc["errors"])
    assert doc["ttfts"] == [None, None, None]  # no 0.0 TTFT from a request that never ran


@pytest.mark.engine
def test_local_gen_in_process_cli(tmp_path: Path) -> None:
    out = tmp_path / "lg.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench_runner.cli", "local-gen", "--in-process", "-p", "16", "-n", "8",
         "-r", "2", "--json", str(out), "--records-file", str(tmp_path / "rec.json")],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "pp16" in proc.stdout and "tg8" in proc.stdout
    (summary,) = json.loads(out.read_text())
    assert summary["mode"] == "in-process" and summary["repetitions"] == 2
    assert summary["generated_tokens"] == [8, 8]
    assert summary["prefill_tok_s"] > 0 and summary["generation_tok_s"] > 0
    recs = json.loads((tmp_path / "rec.json").read_text())
    assert {r["metric"] for r in recs} == {"prefill_tok_s", "generation_tok_s"}
