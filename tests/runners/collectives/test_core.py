"""Pure parts of the collectives benchmark: sizes, factors, number format, text layout, records."""

from __future__ import annotations

import pytest
from bench_formats.nccl_tests import parse_runs
from bench_runner.collectives.core import (
    CollectiveRun,
    PlacementResult,
    SizeRow,
    bus_factor,
    format_float,
    parse_size,
    plan_size,
    render_text,
    size_sweep,
)
from bench_runner.collectives.records import run_to_records


def test_parse_size_suffixes() -> None:
    assert parse_size("8") == 8
    assert parse_size("1K") == 1024
    assert parse_size("16M") == 16 << 20
    assert parse_size("2G") == 2 << 30
    assert parse_size("64KB") == 64 << 10
    with pytest.raises(ValueError):
        parse_size("12Q")


def test_size_sweep_like_nccl_tests() -> None:
    assert size_sweep(8, 128, 2) == [8, 16, 32, 64, 128]
    assert size_sweep(8, 100, 4) == [8, 32]
    assert size_sweep(100, 400, 1, 100) == [100, 200, 300, 400]
    with pytest.raises(ValueError):
        size_sweep(0, 8, 2)


def test_bus_factors() -> None:
    assert bus_factor("all_reduce", 8) == pytest.approx(2 * 7 / 8)
    for name in ("all_gather", "reduce_scatter", "alltoall"):
        assert bus_factor(name, 4) == pytest.approx(0.75)
    assert bus_factor("broadcast", 16) == 1.0
    assert bus_factor("all_reduce", 1) == 0.0


def test_size_plan_matches_real_logs() -> None:
    # h100_10node_1gpu_each: all_gather with 10 ranks prints 33554400 bytes, 419430 doubles per rank
    p = plan_size("all_gather", 33554432, "double", 10)
    assert (p.size_bytes, p.count, p.send_elems, p.recv_elems) == (33554400, 419430, 419430, 4194300)
    # h100_2node_16ranks: alltoall, 16 ranks, 262144 doubles per peer
    p = plan_size("alltoall", 33554432, "double", 16)
    assert (p.size_bytes, p.count) == (33554432, 262144)
    p = plan_size("reduce_scatter", 1 << 20, "float", 4)
    assert (p.send_elems, p.recv_elems, p.count) == (262144, 65536, 65536)
    p = plan_size("all_reduce", 1 << 20, "half", 4)
    assert (p.size_bytes, p.count) == (1 << 20, 1 << 19)


@pytest.mark.parametrize(
    ("value", "width", "text"),
    [
        (171.88, 7, " 171.88"),
        (1178.37, 7, "1178.37"),
        (17673.1, 7, "17673.1"),
        (158724.0, 7, " 158724"),
        (632480.0, 7, " 632480"),
        (0.004, 6, "  0.00"),
        (292.83, 6, "292.83"),
        (1234.5, 6, "1234.5"),
        (12345.0, 6, " 12345"),
    ],
)
def test_number_format_as_nccl_tests(value: float, width: int, text: str) -> None:
    assert format_float(value, width) == text


def _run(wrong: int = 0) -> CollectiveRun:
    rows = []
    for size, t in ((1 << 20, 339.61), (2 << 20, 355.53), (4 << 20, 476.28)):
        alg = size / 1e9 / (t * 1e-6)
        rows.append(
            SizeRow(
                size,
                size // 4,
                "float",
                "sum",
                -1,
                PlacementResult(t, alg, alg * bus_factor("all_reduce", 2), wrong),
                PlacementResult(t * 1.01, alg / 1.01, alg / 1.01, 0),
            )
        )
    run = CollectiveRun(
        "all_reduce",
        2,
        "float",
        rows,
        min_bytes=1 << 20,
        max_bytes=4 << 20,
        step_factor=2,
        warmup_iters=5,
        iters=20,
        backend="gloo",
        devices=[
            {"rank": 0, "pid": 1, "hostname": "h", "device": 0, "device_hex": "cpu", "device_info": "CPU"},
            {"rank": 1, "pid": 2, "hostname": "h", "device": 1, "device_hex": "cpu", "device_info": "CPU"},
        ],
    )
    run.avg_busbw = run.computed_avg_busbw()
    return run


def test_text_layout_and_round_trip() -> None:
    run = _run()
    text = render_text(run)
    lines = text.splitlines()
    assert lines[1] == "# Collective test starting: all_reduce_perf"
    header = next(ln for ln in lines if "#wrong" in ln)
    assert header.split() == [
        "#",
        "size",
        "count",
        "type",
        "redop",
        "root",
        "time",
        "algbw",
        "busbw",
        "#wrong",
        "time",
        "algbw",
        "busbw",
        "#wrong",
    ]
    row = next(ln for ln in lines if ln.strip().startswith("1048576"))
    assert (
        row == "     1048576        262144     float     sum      -1   339.61    3.09    3.09       0"
        "   343.01    3.06    3.06       0"
    )
    assert any(ln.startswith("# Avg bus bandwidth    : ") for ln in lines)
    back, failures = parse_runs(text)
    assert not failures and len(back) == 1
    got = back[0]
    assert (got.collective, got.nranks, got.dtype, got.iters, got.warmup_iters) == (
        "all_reduce",
        2,
        "float",
        20,
        5,
    )
    assert [r.size for r in got.rows] == [r.size for r in run.rows]
    for a, b in zip(got.rows, run.rows, strict=True):
        assert a.out_of_place and b.out_of_place and a.in_place and b.in_place
        assert a.out_of_place.busbw == pytest.approx(b.out_of_place.busbw, abs=0.005)
        assert a.in_place.time_us == pytest.approx(b.in_place.time_us, abs=0.005)
    assert got.avg_busbw == pytest.approx(run.avg_busbw, rel=1e-5)


def test_records_for_good_and_wrong_runs() -> None:
    results, failures = run_to_records(_run())
    assert not failures
    busbw = [r for r in results if r.metric == "busbw"]
    assert [r.params["size_bytes"] for r in busbw] == [1 << 20, 2 << 20, 4 << 20]
    assert all(r.direction == "higher" and r.unit == "GB/s" and r.suite == "collectives" for r in busbw)
    avg = [r for r in results if r.metric == "avg_busbw"]
    assert len(avg) == 1 and avg[0].value == pytest.approx(_run().avg_busbw)
    assert avg[0].samples is not None and len(avg[0].samples) == 6

    results, failures = run_to_records(_run(wrong=3))
    assert [f.failure_class for f in failures] == ["wrong_result"]
    assert "9 wrong elements" in failures[0].message
    assert not [r for r in results if r.metric in ("busbw", "avg_busbw")]
