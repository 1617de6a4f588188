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
    # Through the real launcher: both ranks exit 7 (as nccl-tests), the JSON line says which
    # sizes were wrong, and that verdict is the failure.
    lines: list[str] = []
    out = run(_suite(tmp_path, "fault_rank = 1\nstep_factor = 8"), tmp_path, lines=lines)
    assert out.results == []
    [failure] = out.failures
    assert failure.failure_class == "wrong_result" and failure.benchmark == "ar"
    assert "wrong elements" in failure.message and failure.params["collective"] == "all_reduce"
    assert "64 B: " in failure.message and "4096 B: " in failure.message
    # the rows travel with it: size count type redop root, then time algbw busbw #wrong
    assert failure.log_excerpt is not None
    rows = [line.split() for line in failure.log_excerpt.splitlines()]
    assert [int(r[0]) for r in rows] == [64, 512, 4096]
    assert all(int(r[-1]) > 0 for r in rows)
    assert any("ranks exited 7" in line for line in lines)
    assert any("Out of bounds values : 6 FAILED" in line for line in lines)
    assert not any("rank1!" in line and "Traceback" in line for line in lines)


def test_the_batch_context_says_which_placements_were_measured(tmp_path: Path) -> None:
    out = run(_suite(tmp_path, 'collectives = ["all_reduce", "all_gather"]\nstep_factor = 64'), tmp_path)
    assert out.failures == []
    measured = {(r.params["collective"], r.metric) for r in out.results if r.metric.startswith("busbw")}
    assert measured == {
        ("all_reduce", "busbw_inplace"),
        ("all_gather", "busbw"),
        ("all_gather", "busbw_inplace"),
    }
    assert out.context == {
        "collectives": {
            "ar": {
                "all_reduce": {
                    "placements": ["in_place"],
                    "not_measured": {"out_of_place": "torch.distributed.all_reduce has no out-of-place form"},
                },
                "all_gather": {"placements": ["in_place", "out_of_place"]},
            }
        }
    }


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
