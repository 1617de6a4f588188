"""The harness over a fake in-memory backend (ranks as threads): planted wrong elements reach the
`#wrong` columns, the out-of-bounds footer, the records and the exit status; placements a
backend cannot measure are left out and said so."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from bench_formats.nccl_tests import parse_runs
from bench_runner.collectives.backends import (
    FAULT_STRIDE,
    Bits,
    PreparedOp,
    rank_input,
    sum_over_ranks,
    value_bits,
    wrong_elements,
)
from bench_runner.collectives.core import COLLECTIVES, CollectiveRun, render_text
from bench_runner.collectives.harness import SweepConfig, run_sweep
from bench_runner.collectives.mlx_backend import pack_floats, unpack_rank_floats
from bench_runner.collectives.records import run_context, run_to_records
from bench_runner.collectives.worker import JSON_MARKER, WRONG_RESULT_EXIT, run_sweeps

# (rank, recv_elems, in_place) -> elements of that rank's output to corrupt
Plant = dict[tuple[int, int, bool], int]


class FakeGroup:
    """What a process group does, for threads: every rank hands in a value, all get the list."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._barrier = threading.Barrier(size, timeout=30)
        self._slots: list[Any] = [None] * size

    def exchange(self, rank: int, value: Any) -> list[Any]:
        self._slots[rank] = value
        self._barrier.wait()
        out = list(self._slots)
        self._barrier.wait()
        return out


def _collective_output(collective: str, sends: list[Any], rank: int, recv_elems: int) -> Any:
    if collective == "all_reduce":
        return sum(sends)
    if collective == "all_gather":
        return np.concatenate(sends)
    if collective == "reduce_scatter":
        return sum(sends)[rank * recv_elems : (rank + 1) * recv_elems]
    if collective == "alltoall":
        per = recv_elems // len(sends)
        return np.concatenate([s[rank * per : (rank + 1) * per] for s in sends])
    return sends[0]  # broadcast from rank 0


class FakeBackend:
    """Collectives computed in numpy over a FakeGroup; sums over ranks take MLX's float64 path."""

    name = "fake"
    device_info = "fake device"

    def __init__(
        self, group: FakeGroup, rank: int, plant: Plant | None = None, in_place_only: Sequence[str] = ()
    ) -> None:
        self.group = group
        self.rank = rank
        self.world_size = group.size
        self.plant = plant or {}
        self.in_place_only = set(in_place_only)

    def unsupported_placements(self, collective: str) -> dict[str, str]:
        return (
            {"out_of_place": "the fake has no out-of-place form"} if collective in self.in_place_only else {}
        )

    def prepare(
        self, collective: str, dtype: str, send_elems: int, recv_elems: int, in_place: bool
    ) -> PreparedOp:
        n, r = self.world_size, self.rank
        state: dict[str, Any] = {}

        def fill(fault: bool) -> None:
            state["send"] = rank_input(dtype, r, n, send_elems, fault)

        def run() -> None:
            sends = self.group.exchange(r, state["send"])
            bits: Bits = value_bits(_collective_output(collective, sends, r, recv_elems), dtype).copy()
            bits[: self.plant.get((r, recv_elems, in_place), 0)] ^= 1  # one ULP off
            state["out"] = bits

        def wrong() -> int | None:
            if in_place and not COLLECTIVES[collective].in_place_checked:
                return None
            return wrong_elements(state["out"], collective, dtype, r, n, send_elems, recv_elems)

        return PreparedOp(run, fill, wrong)

    def barrier(self) -> None:
        self.group.exchange(self.rank, None)

    def synchronize(self) -> None:
        pass

    def sum_values(self, values: Sequence[float]) -> list[float]:
        raw = b"".join(self.group.exchange(self.rank, pack_floats(values)))
        return sum_over_ranks(unpack_rank_floats(raw, self.world_size))

    def gather_objects(self, obj: Any) -> list[Any]:
        return self.group.exchange(self.rank, obj)

    def close(self) -> None:
        pass


def on_ranks(nranks: int, body: Callable[[FakeBackend], Any], **backend_kw: Any) -> list[Any]:
    """Run `body` on every rank of a fresh fake group; each rank's return value."""
    group = FakeGroup(nranks)
    with ThreadPoolExecutor(nranks) as pool:
        futures = [pool.submit(body, FakeBackend(group, r, **backend_kw)) for r in range(nranks)]
        return [f.result(timeout=60) for f in futures]


def sweep(collective: str, **kw: Any) -> SweepConfig:
    return SweepConfig(collective=collective, min_bytes=64, max_bytes=4096, step_factor=4, iters=2, **kw)


def test_planted_wrong_elements_are_counted_printed_and_fail_the_run() -> None:
    # all_gather of floats over 4 ranks at -b 256: 16 per rank, 64 out
    plant: Plant = {(1, 64, False): 3, (2, 64, False): 2, (3, 256, True): 5}
    runs: list[CollectiveRun] = on_ranks(4, lambda b: run_sweep(b, sweep("all_gather")), plant=plant)
    run = runs[0]
    assert all(r.to_json() == run.to_json() for r in runs[1:])  # every rank has the same sums
    assert [(row.size, row.count) for row in run.rows] == [(64, 4), (256, 16), (1024, 64), (4096, 256)]
    wrong = {(row.size, name): p.wrong for row in run.rows for name, p in row.placements()}
    assert wrong.pop((256, "out_of_place")) == 5  # summed over ranks
    assert wrong.pop((1024, "in_place")) == 5
    assert set(wrong.values()) == {0}
    assert run.out_of_bounds == 3  # ranks x checks that failed: ranks 1 and 2 at 256 B, rank 3 at 1 KiB

    text = render_text(run)
    (row_256,) = [ln.split() for ln in text.splitlines() if ln.strip().startswith("256 ")]
    assert (row_256[8], row_256[12]) == ("5", "0")  # out-of-place and in-place #wrong
    assert "# Out of bounds values : 3 FAILED" in text
    back, refused = parse_runs(text)  # what nccl-tests' readers see: a failed block, no numbers
    assert back == []
    assert [f.failure_class for f in refused] == ["wrong_result"]
    assert "10 wrong elements" in refused[0].message and "3 out of bounds values" in refused[0].message

    results, failures = run_to_records(run)
    assert [f.failure_class for f in failures] == ["wrong_result"]
    assert failures[0].message == (
        "all_gather over 4 ranks: 10 wrong elements (256 B: 5, 1024 B: 5); 3 out of bounds values"
    )
    assert results == []  # not even the sizes that checked out: the run measured a broken collective
    assert failures[0].log_excerpt is not None and "256 16" in failures[0].log_excerpt


def test_fault_injection_counts_every_rank_that_sees_it() -> None:
    # rank 0's input is off at every 5th element; after an all_reduce every rank sees it
    runs = on_ranks(3, lambda b: run_sweep(b, sweep("all_reduce", fault_rank=0)))
    run = runs[0]
    for row in run.rows:
        for _, p in row.placements():
            assert p.wrong == 3 * ((row.count + FAULT_STRIDE - 1) // FAULT_STRIDE)
    assert run.out_of_bounds == 3 * 2 * len(run.rows)
    assert run.extra["fault_rank"] == 0


def test_clean_run_footer_and_records() -> None:
    run = on_ranks(2, lambda b: run_sweep(b, sweep("reduce_scatter", dtype="bfloat16")))[0]
    assert run.out_of_bounds == 0 and run.total_wrong() == 0
    assert "# Out of bounds values : 0 OK" in render_text(run)
    results, failures = run_to_records(run)
    assert failures == []
    metrics = {r.metric for r in results}
    assert metrics == {
        "busbw",
        "algbw",
        "time_us",
        "busbw_inplace",
        "algbw_inplace",
        "time_us_inplace",
        "avg_busbw",
    }


def test_in_place_alltoall_is_not_checked() -> None:
    plant: Plant = {(0, 64, True): 4}  # corrupt, but in-place alltoall is N/A as in nccl-tests
    run = on_ranks(2, lambda b: run_sweep(b, sweep("alltoall")), plant=plant)[0]
    assert all(row.in_place is not None and row.in_place.wrong is None for row in run.rows)
    assert run.out_of_bounds == 0


def test_a_placement_the_backend_lacks_is_not_measured_and_said_so() -> None:
    run = on_ranks(2, lambda b: run_sweep(b, sweep("all_reduce")), in_place_only=["all_reduce"])[0]
    assert all(row.out_of_place is None and row.in_place is not None for row in run.rows)
    assert run.not_measured == {"out_of_place": "the fake has no out-of-place form"}
    assert run.avg_busbw == pytest.approx(
        sum(row.in_place.busbw for row in run.rows if row.in_place) / len(run.rows)
    )
    text = render_text(run)
    assert "# out-of-place: not measured (the fake has no out-of-place form)" in text
    results, _ = run_to_records(run)
    assert {r.metric for r in results} == {"busbw_inplace", "algbw_inplace", "time_us_inplace", "avg_busbw"}
    assert run_context(run) == {"placements": ["in_place"], "not_measured": dict(run.not_measured)}
    back = CollectiveRun.from_json(json.loads(json.dumps(run.to_json())))
    assert back.not_measured == run.not_measured
    # asking for out-of-place only measures nothing, and says why
    only = on_ranks(
        2,
        lambda b: run_sweep(b, sweep("all_reduce", placements=("out_of_place",))),
        in_place_only=["all_reduce"],
    )[0]
    assert all(not row.placements() for row in only.rows) and only.not_measured


def test_worker_exit_status_and_json() -> None:
    plant: Plant = {(1, 16, False): 1}
    outs = [io.StringIO() for _ in range(2)]

    def body(b: FakeBackend, emit_json: bool) -> int:
        cfgs = [sweep("all_reduce"), sweep("reduce_scatter")]
        return run_sweeps(b, cfgs, emit_json=emit_json, out=outs[b.rank])

    # run by hand: every rank fails as nccl-tests does
    assert on_ranks(2, lambda b: body(b, False), plant=plant) == [WRONG_RESULT_EXIT] * 2
    text = outs[0].getvalue()
    assert "# Out of bounds values : 1 FAILED" in text and "# Out of bounds values : 0 OK" in text
    assert outs[1].getvalue() == ""  # rank 0 prints
    # under a launcher too: the status says a check failed, the JSON says which
    outs[0] = io.StringIO()
    assert on_ranks(2, lambda b: body(b, True), plant=plant) == [WRONG_RESULT_EXIT] * 2
    (line,) = [ln for ln in outs[0].getvalue().splitlines() if ln.startswith(JSON_MARKER)]
    runs = json.loads(line[len(JSON_MARKER) :])["runs"]
    assert [r["out_of_bounds"] for r in runs] == [1, 0]
    # a clean run exits 0 either way
    assert on_ranks(2, lambda b: body(b, False)) == [0, 0]
    assert on_ranks(2, lambda b: body(b, True)) == [0, 0]
