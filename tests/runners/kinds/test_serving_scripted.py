"""The serving kind against the scripted SSE server, whose delays are known: TTFT and ITL come
through the kind unchanged, and failures get their classes (all failed, timeout, engine died)."""

from __future__ import annotations

import contextlib
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from bench_runner.records import ResultRecord
from bench_runner.serving.scripted_server import ScriptedServerProcess
from bench_runner.suite import EngineHandle, load_suite

from .conftest import run, write_suite

TTFT_MS, ITL_MS, OSL, N = 40.0, 15.0, 8, 6


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedServerProcess]:
    # a sleeping (select, microsecond timers) loop: no core busy-polling beside other tests
    with ScriptedServerProcess(busy=False) as srv:
        yield srv


def _serving_suite(tmp_path: Path, beside: str, params: str, timeout: float = 60) -> Any:
    return load_suite(
        write_suite(
            tmp_path,
            f"""
            name = "scripted"
            [[benchmark]]
            name = "serve"
            kind = "serving"
            timeout = {timeout}
            {beside}
            [benchmark.params]
            {params}
            """,
        )
    )


def _by_metric(results: list[ResultRecord]) -> dict[str, ResultRecord]:
    return {r.metric: r for r in results}


def test_ttft_and_itl_come_through_unchanged(scripted: ScriptedServerProcess, tmp_path: Path) -> None:
    httpx.post(f"{scripted.base_url}/_log/clear", timeout=5)
    suite = _serving_suite(
        tmp_path,
        f"""base_url = "{scripted.base_url}"
            warmups = 0
            tokenizer = "none"
            extra_body = {{ scripted = {{ ttft_ms = {TTFT_MS}, itl_ms = {ITL_MS} }} }}""",
        f"isl = 16\nosl = {OSL}\nconcurrency = 1\nnum_prompts = {N}",
    )
    out = run(suite, tmp_path)
    assert out.failures == [], out.log
    m = _by_metric(out.results)
    params = {"isl": 16, "osl": OSL, "concurrency": 1, "num_prompts": N}
    assert all(r.suite == "scripted" and r.benchmark == "serve" and r.params == params for r in out.results)
    assert m["failed_requests"].value == 0

    # The server's own record of when it wrote each chunk (same monotonic clock as the client).
    log = httpx.get(f"{scripted.base_url}/_log", timeout=5).json()
    assert sorted(log, key=int) == [str(i) for i in range(1, N + 1)]  # one request at a time, in order
    sends = [log[str(i + 1)]["send_times"] for i in range(N)]
    assert all(len(s) == OSL for s in sends)
    true_gaps_ms = [1000.0 * g for s in sends for g in np.diff(s)]

    ttft = m["mean_ttft_ms"]
    assert ttft.unit == "ms" and ttft.direction == "lower"
    assert ttft.samples is not None and len(ttft.samples) == N
    # TTFT: the scripted delay after the server got the request, plus the client->server hop
    for sample, s, i in zip(ttft.samples, sends, range(N), strict=True):
        server_side_ms = 1000.0 * (s[0] - log[str(i + 1)]["t_recv"])
        assert TTFT_MS - 0.5 <= server_side_ms <= sample < server_side_ms + 10.0
    assert ttft.value == pytest.approx(statistics.fmean(ttft.samples), rel=1e-9)
    assert m["median_ttft_ms"].value == pytest.approx(statistics.median(ttft.samples), rel=1e-9)
    assert ttft.stats is not None and ttft.stats["p99"] == m["p99_ttft_ms"].value

    itl = m["mean_itl_ms"]
    assert itl.samples is not None and len(itl.samples) == N * (OSL - 1)
    err = np.abs(np.asarray(itl.samples) - np.asarray(true_gaps_ms))
    assert float(np.median(err)) < 1.0 and float(np.percentile(err, 90)) < 3.0, err
    assert itl.value == pytest.approx(statistics.fmean(itl.samples), rel=1e-9)
    assert abs(itl.value - ITL_MS) < 2.0
    tpot = m["mean_tpot_ms"]
    assert abs(tpot.value - ITL_MS) < 2.0
    # throughput consistent with the token counts (usage: exactly OSL per request)
    rps, tps = m["request_throughput"].value, m["output_throughput"].value
    assert tps == pytest.approx(rps * OSL, rel=1e-9)
    assert m["total_token_throughput"].value > tps


def test_sweep_gives_one_set_of_records_per_point(scripted: ScriptedServerProcess, tmp_path: Path) -> None:
    suite = _serving_suite(
        tmp_path,
        f"""base_url = "{scripted.base_url}"
            tokenizer = "none"
            extra_body = {{ scripted = {{ ttft_ms = 5, itl_ms = 2 }} }}""",
        "isl = 8\nosl = 4\nconcurrency = [1, 3]\nnum_prompts = 6",
    )
    out = run(suite, tmp_path)
    assert out.failures == [], out.log
    points = sorted({r.params["concurrency"] for r in out.results if r.metric == "mean_ttft_ms"})
    assert points == [1, 3]


def test_short_requests_are_a_warning_and_a_stored_shortfall(
    scripted: ScriptedServerProcess, tmp_path: Path
) -> None:
    # the engine stops after 3 tokens (and says so in usage) where 6 were asked for
    suite = _serving_suite(
        tmp_path,
        f"""base_url = "{scripted.base_url}"
            tokenizer = "none"
            extra_body = {{ scripted = {{ ttft_ms = 5, itl_ms = 2, n_tokens = 3 }} }}""",
        "isl = 8\nosl = 6\nnum_prompts = 4",
    )
    lines: list[str] = []
    out = run(suite, tmp_path, lines=lines)
    assert out.failures == [], out.log
    m = _by_metric(out.results)
    assert m["short_requests"].value == 4 and m["short_requests"].direction == "lower"
    assert m["output_shortfall_tokens"].value == 4 * 3
    assert m["output_throughput"].value == pytest.approx(m["request_throughput"].value * 3, rel=1e-9)
    [warning] = [line for line in lines if "warning:" in line]
    assert "4 of 4 requests produced fewer than 6 output tokens (12 short in all)" in warning


def test_shared_prefix_and_the_goodput_reference(scripted: ScriptedServerProcess, tmp_path: Path) -> None:
    httpx.post(f"{scripted.base_url}/_log/clear", timeout=5)
    suite = _serving_suite(
        tmp_path,
        f"""base_url = "{scripted.base_url}"
            tokenizer = "none"
            warmups = 0
            shared_prefix_len = 24
            best_request_throughput = 1000.0
            extra_body = {{ scripted = {{ ttft_ms = 5, itl_ms = 2 }} }}""",
        "isl = 64\nosl = 4\nnum_prompts = 4",
    )
    out = run(suite, tmp_path)
    assert out.failures == [], out.log
    # a prefix-caching workload is another workload: its records say so
    assert {r.params.get("shared_prefix_len") for r in out.results} == {24}
    heads = [
        entry["prompt_head"] for entry in httpx.get(f"{scripted.base_url}/_log", timeout=5).json().values()
    ]
    assert len(heads) == 4 and len({h[:60] for h in heads}) == 1 and len(set(heads)) == 4
    m = _by_metric(out.results)
    assert m["goodput_ratio"].value == pytest.approx(m["request_throughput"].value / 1000.0, rel=1e-9)
    assert out.context == {
        "serving": {"serve": {"goodput_ratio_reference": {"request_throughput": 1000.0, "source": "given"}}}
    }


def test_all_requests_failed_is_a_crash(scripted: ScriptedServerProcess, tmp_path: Path) -> None:
    suite = _serving_suite(
        tmp_path,
        f"""base_url = "{scripted.base_url}"
            tokenizer = "none"
            extra_body = {{ scripted = {{ status = 503 }} }}""",
        "isl = 8\nosl = 4\nnum_prompts = 4",
    )
    out = run(suite, tmp_path)
    assert out.results == []
    [failure] = out.failures
    assert failure.failure_class == "crash" and "all 4 requests failed" in failure.message
    assert "503" in failure.message


def test_too_slow_is_a_timeout(scripted: ScriptedServerProcess, tmp_path: Path) -> None:
    suite = _serving_suite(
        tmp_path,
        f"""base_url = "{scripted.base_url}"
            tokenizer = "none"
            extra_body = {{ scripted = {{ ttft_ms = 20000 }} }}""",
        "isl = 8\nosl = 4\nnum_prompts = 2",
        timeout=1.5,
    )
    started = time.monotonic()
    out = run(suite, tmp_path)
    assert time.monotonic() - started < 10
    assert out.results == []
    assert [f.failure_class for f in out.failures] == ["timeout"], out.failures


def test_no_engine_and_no_base_url_is_setup(tmp_path: Path) -> None:
    out = run(_serving_suite(tmp_path, "", "isl = 8"), tmp_path)
    assert [f.failure_class for f in out.failures] == ["setup"]
    assert "base_url" in out.failures[0].message


@pytest.mark.parametrize(("how", "expected"), [("sigkill", "oom"), ("exit", "crash")])
def test_engine_dying_during_the_run_gives_its_class(
    scripted: ScriptedServerProcess, tmp_path: Path, how: str, expected: str
) -> None:
    """The suite's engine (here a stand-in process; the scripted server answers for it) dies
    while requests are in flight: SIGKILL that the runner did not send reads as the OOM killer."""
    proc = subprocess.Popen(["sleep", "60"] if how == "sigkill" else ["sh", "-c", "sleep 1; exit 3"])
    handle = EngineHandle(base_url=scripted.base_url, port=scripted.port, process=proc)
    if how == "sigkill":
        threading.Timer(1.0, proc.send_signal, args=(signal.SIGKILL,)).start()
    suite = load_suite(
        write_suite(
            tmp_path,
            """
            name = "dies"
            [engine]
            command = "unused"
            [[benchmark]]
            name = "serve"
            kind = "serving"
            timeout = 60
            tokenizer = "none"
            extra_body = { scripted = { ttft_ms = 20000 } }
            [benchmark.params]
            isl = 8
            osl = 4
            num_prompts = 2
            """,
        )
    )
    try:
        started = time.monotonic()
        out = run(suite, tmp_path, engine_starter=lambda *a: contextlib.nullcontext(handle))
        assert time.monotonic() - started < 15
    finally:
        proc.kill()
        proc.wait()
    assert out.results == []
    [failure] = out.failures
    assert failure.failure_class == expected, failure
    assert "engine died during the benchmark" in failure.message
