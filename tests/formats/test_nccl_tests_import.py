"""nccl-tests logs: every variant in shared/data/nccl_tests parses to the numbers it prints."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from bench_formats import ImportFormatError, detect_format, parse
from bench_formats.collectives import bus_factor
from bench_formats.nccl_tests import parse_runs

from tests.conftest import SHARED_DATA

DATA = SHARED_DATA / "nccl_tests"
GOOD = sorted(p for p in DATA.glob("*.txt") if not p.name.startswith("FAILED"))

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data not found at {DATA}")


def _printed_avgs(text: str) -> list[float]:
    out = []
    for line in text.splitlines():
        if "Avg bus bandwidth" in line:
            out.append(float(line.split(":")[-1].strip()))
    return out


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_avg_bus_bandwidth_reproduced(path: Path) -> None:
    text = path.read_text()
    runs, failures = parse_runs(text, path.name)
    assert not failures
    printed = _printed_avgs(text)
    assert [r.avg_busbw for r in runs] == printed
    for run in runs:
        # the plain mean of every printed busbw (oop and in-place) is the printed average, to rounding
        assert run.computed_avg_busbw() == pytest.approx(run.avg_busbw, abs=0.006)
        assert run.nranks > 1
    outcome = parse("auto", text, source_name=path.name)
    avg_records = [r.value for r in outcome.results if r.metric == "avg_busbw"]
    assert avg_records == printed


def _decimals(value: float) -> int:
    for d in (0, 1, 2):
        if abs(value * 10**d - round(value * 10**d)) < 1e-6:
            return d
    return 3


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_busbw_recomputed_from_size_and_time(path: Path) -> None:
    runs, _ = parse_runs(path.read_text(), path.name)
    checked = 0
    for run in runs:
        factor = bus_factor(run.collective, run.nranks)
        for row in run.rows:
            for _, p in row.placements():
                t = p.time_us * 1e-6
                algbw = row.size / 1e9 / t
                # time is printed with 2, 1 or 0 decimals (by version and magnitude): propagate its rounding
                t_err = 0.5e-6 * 10.0 ** -_decimals(p.time_us)
                slack = algbw * t_err / t * factor
                assert algbw == pytest.approx(p.algbw, abs=0.005 + algbw * t_err / t + 1e-9)
                assert algbw * factor == pytest.approx(p.busbw, abs=0.005 + slack + 1e-9)
                checked += 1
    assert checked >= 8


def test_summary_csv_from_the_source_repo_matches() -> None:
    files = {
        "nccl_N10_G1.log": DATA / "h100_10node_1gpu_each_v2.17.8.txt",
        "nccl_N10_G8.log": DATA / "h100_10node_8gpu_each_80ranks_v2.17.8.txt",
    }
    parsed = {
        name: {f"{r.collective}_perf": r for r in parse_runs(path.read_text(), path.name)[0]}
        for name, path in files.items()
    }
    with (DATA / "h100_10node_summary_from_repo.csv").open() as f:
        rows = list(csv.DictReader(f))
    matched = 0
    for row in rows:
        if row["file"] not in parsed:
            continue  # the G2/G4 logs were not copied
        run = parsed[row["file"]][row["test"]]
        assert run.avg_busbw == pytest.approx(float(row["avg_bus_bw_GBs"]), abs=1e-6)
        assert max(run.busbw_values()) == pytest.approx(float(row["peak_busbw_GBs"]), abs=1e-6)
        assert run.min_bytes == int(row["minBytes"]) and run.max_bytes == int(row["maxBytes"])
        assert run.nranks == int(row["N"]) * int(row["G"])
        matched += 1
    assert matched == 10


def test_multi_collective_log_and_na_in_place() -> None:
    runs, _ = parse_runs((DATA / "h100_1node_8gpu_5collectives_v2.17.8.txt").read_text())
    assert [r.collective for r in runs] == [
        "all_reduce",
        "all_gather",
        "reduce_scatter",
        "alltoall",
        "sendrecv",
    ]
    a2a = runs[3]
    assert all(row.in_place is not None and row.in_place.wrong is None for row in a2a.rows)  # printed N/A
    assert all(row.out_of_place is not None and row.out_of_place.wrong == 0 for row in a2a.rows)
    first = runs[0].rows[0]
    assert (first.size, first.count, first.type, first.redop, first.root) == (
        33554432,
        4194304,
        "double",
        "sum",
        -1,
    )


def test_legacy_error_column_mpi_tagged_log() -> None:
    path = DATA / "a100_p4d_2node_16gpu_legacy_error_column_mpirun_tagged_NCCL_DEBUG.txt"
    runs, failures = parse_runs(path.read_text(), path.name)
    assert not failures and len(runs) == 1
    run = runs[0]
    assert run.legacy_error_column and run.collective == "all_reduce" and run.nranks == 16
    first, last = run.rows[0].out_of_place, run.rows[-1].out_of_place
    assert first is not None and last is not None
    assert run.rows[0].root is None and first.error == pytest.approx(2e-7)
    assert len(run.rows) == 30 and run.rows[-1].size == 4294967296
    assert last.busbw == pytest.approx(43.81)
    assert run.avg_busbw == pytest.approx(11.2432)
    assert detect_format(path.read_text(), path.name) == "nccl-tests"


def test_failed_runs_become_failures_not_zeros() -> None:
    net = parse("auto", (DATA / "FAILED_h100_2node_alltoall_network_error_v2.17.6.txt").read_text())
    assert net.results == []
    assert [f.failure_class for f in net.failures] == ["crash"]
    assert "network error" in net.failures[0].message and net.failures[0].benchmark == "alltoall"
    assert net.failures[0].params["nranks"] == 8

    trunc = parse(
        "nccl-tests", (DATA / "FAILED_h100_2node_alltoall_truncated_no_results_v2.17.6.txt").read_text()
    )
    assert trunc.results == []
    assert [f.failure_class for f in trunc.failures] == ["timeout"]
    assert "no results" in trunc.failures[0].message


def test_wrong_results_and_truncated_table(tmp_path: Path) -> None:
    text = (DATA / "gh200_2node_2gpu_allreduce_1M-128M_v2.18.2.txt").read_text()
    bad = text.replace("3.09       0   335.85", "3.09      17   335.85")
    out = parse("nccl-tests", bad)
    wrong = [f for f in out.failures if f.failure_class == "wrong_result"]
    assert len(wrong) == 1 and "17 wrong" in wrong[0].message
    assert not any(r.metric == "avg_busbw" for r in out.results)
    assert not any(r.params.get("size_bytes") == 1048576 for r in out.results)

    cut = text.split("# Out of bounds")[0]
    partial = parse("nccl-tests", cut)
    assert partial.failures and partial.failures[0].failure_class == "crash"
    assert len([r for r in partial.results if r.metric == "busbw"]) == 8


def test_records_are_well_formed() -> None:
    out = parse("auto", (DATA / "h100_2node_smoke_allreduce_sendrecv_v2.17.8.txt").read_text())
    busbw = [r for r in out.results if r.metric == "busbw" and r.benchmark == "all_reduce"]
    assert [r.value for r in busbw] == [40.07, 42.44, 44.52, 45.18, 46.32]
    assert all(r.direction == "higher" and r.unit == "GB/s" for r in busbw)
    times = [r for r in out.results if r.metric == "time_us"]
    assert times and all(r.direction == "lower" for r in times)
    assert busbw[0].params == {
        "collective": "all_reduce",
        "nranks": 2,
        "dtype": "double",
        "backend": "nccl",
        "size_bytes": 33554432,
    }
    for r in out.results:
        r.to_json()


def test_garbage_is_a_clear_error() -> None:
    with pytest.raises(ImportFormatError, match="no nccl-tests output"):
        parse("nccl-tests", "hello\nworld\n")
    with pytest.raises(ImportFormatError):
        parse("auto", "just some words")
    with pytest.raises(ImportFormatError, match="empty"):
        parse("auto", "   ")
