"""The collectives kind over gloo with real ranks: #wrong > 0 is a wrong_result, a run past
its timeout is a timeout with every rank killed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from bench_runner.suite import Suite, load_suite

from .conftest import run, write_suite

pytest.importorskip("torch")


def _suite(tmp_path: Path, params: str, timeout: float = 120, max_bytes: str = "4K") -> Suite:
    return load_suite(
        write_suite(
            tmp_path,
            f"""
            name = "coll"
            [[benchmark]]
            name = "ar"
            kind = "collectives"
            timeout = {timeout}
            [benchmark.params]
            backend = "gloo"
            np = 2
            min_bytes = 64
            max_bytes = "{max_bytes}"
            iters = 2
            warmup_iters = 1
            {params}
            """,
        )
    )


def test_wrong_elements_are_a_wrong_result(tmp_path: Path) -> None:
    out = run(_suite(tmp_path, "fault_rank = 1\nstep_factor = 8"), tmp_path)
    assert [r.metric for r in out.results if r.metric.startswith("busbw")] == []
    [failure] = out.failures
    assert failure.failure_class == "wrong_result" and failure.benchmark == "ar"
    assert "wrong elements" in failure.message and failure.params["collective"] == "all_reduce"


def test_past_the_timeout_every_rank_is_killed(tmp_path: Path) -> None:
    lines: list[str] = []
    started = time.monotonic()
    # importing torch alone takes longer than this
    out = run(_suite(tmp_path, "", timeout=1.0, max_bytes="1G"), tmp_path, lines=lines)
    assert time.monotonic() - started < 20
    assert out.results == []
    assert [f.failure_class for f in out.failures] == ["timeout"], out.failures
    assert "ranks killed" in out.failures[0].message
    # no rank outlives the benchmark
    workers = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if (
                "bench_runner.collectives.worker" in cmdline
                and str(tmp_path) in Path(f"/proc/{pid}/cwd").resolve().as_posix()
            ):
                workers.append(pid)
    assert workers == []
