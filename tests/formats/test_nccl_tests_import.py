"""nccl-tests logs: every variant in shared/data/nccl_tests parses to the numbers it prints."""

from __future__ import annotations

import csv
import re
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


GH200 = DATA / "gh200_2node_2gpu_allreduce_1M-128M_v2.18.2.txt"
MULTI = DATA / "h100_1node_8gpu_5collectives_v2.17.8.txt"
_ROW = re.compile(r"^\s*\d+\s+\d+\s+[a-z0-9_]+\s+\w+\s")


def _rows_printed(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if _ROW.match(line)]


def _cut_after_rows(text: str, n: int) -> str:
    """The log as if the run died right after printing its n-th row."""
    out, seen = [], 0
    for line in text.splitlines():
        out.append(line)
        if _ROW.match(line):
            seen += 1
            if seen == n:
                break
    return "\n".join(out) + "\n"


def _blocks(text: str) -> list[str]:
    """A multi-collective log split at each `# Collective test starting` (first piece: preamble)."""
    parts = re.split(r"(?m)^(?=# nccl-tests version)", text)
    return [p for p in parts if p.strip()]


def test_log_cut_after_four_rows_is_a_timeout_that_keeps_the_rows() -> None:
    text = GH200.read_text()
    cut = _cut_after_rows(text, 4)
    out = parse("nccl-tests", cut)
    # The old importer stored these four rows and an avg_busbw of 8.21 it computed itself.
    assert out.results == []
    assert parse_runs(cut)[0] == []
    (failure,) = out.failures
    assert (failure.failure_class, failure.benchmark) == ("timeout", "all_reduce")
    assert "after 4 rows (up to 8388608 B of 134217728 B)" in failure.message
    assert "no error printed" in failure.message
    assert failure.log_excerpt is not None
    excerpt = failure.log_excerpt.splitlines()
    assert excerpt[-4:] == _rows_printed(text)[:4]
    assert excerpt[0].split()[1:3] == ["size", "count"]  # the column header comes with them
    assert failure.params == {"collective": "all_reduce", "nranks": 2, "dtype": "float", "backend": "nccl"}


def test_block_cut_inside_a_multi_collective_log_is_a_crash_and_the_rest_imports() -> None:
    text = MULTI.read_text()
    blocks = _blocks(text)
    assert "all_gather_perf" in blocks[1]
    blocks[1] = _cut_after_rows(blocks[1], 3)
    out = parse("nccl-tests", "".join(blocks))
    (failure,) = out.failures
    assert (failure.failure_class, failure.benchmark) == ("crash", "all_gather")
    assert "after 3 rows" in failure.message and "the next test started" in failure.message
    assert failure.log_excerpt is not None
    assert failure.log_excerpt.splitlines()[-3:] == _rows_printed(blocks[1])
    assert not [r for r in out.results if r.benchmark == "all_gather"]
    printed = _printed_avgs(text)
    avgs = {r.benchmark: r.value for r in out.results if r.metric == "avg_busbw"}
    assert avgs == {
        "all_reduce": printed[0],
        "reduce_scatter": printed[2],
        "alltoall": printed[3],
        "sendrecv": printed[4],
    }


@pytest.mark.parametrize(
    ("error_line", "failure_class"),
    [
        ("cnode3-002: Test NCCL failure common.cu:1279 'unhandled cuda error'", "crash"),
        ("cnode3-002: Test CUDA failure common.cu:892 'out of memory'", "oom"),
        (
            "slurmstepd: error: *** STEP 4242.0 ON cnode3-002 CANCELLED AT 2026-01-28T15:00:00 "
            "DUE TO TIME LIMIT ***",
            "timeout",
        ),
    ],
)
def test_an_error_after_some_rows_is_a_failure_with_rows_and_error(
    error_line: str, failure_class: str
) -> None:
    text = GH200.read_text()
    broken = _cut_after_rows(text, 5) + error_line + "\n"
    out = parse("nccl-tests", broken)
    assert out.results == []
    (failure,) = out.failures
    assert failure.failure_class == failure_class
    assert error_line in failure.message
    assert failure.log_excerpt is not None
    excerpt = failure.log_excerpt.splitlines()
    assert excerpt[-1] == error_line and excerpt[-6:-1] == _rows_printed(text)[:5]


def _with_wrong(row: str, wrong: int) -> str:
    tokens = row.split()
    tokens[8] = str(wrong)  # the out-of-place #wrong column
    return " ".join(tokens)


def test_planted_wrong_elements_fail_their_whole_block() -> None:
    text = MULTI.read_text()
    first_row = _rows_printed(text)[0]
    planted = text.replace(first_row, _with_wrong(first_row, 24), 1)
    out = parse("nccl-tests", planted)
    (failure,) = out.failures
    assert (failure.failure_class, failure.benchmark) == ("wrong_result", "all_reduce")
    assert "24 wrong elements (33554432 B: 24)" in failure.message
    # Not even the sizes that checked out: the block measured a broken collective.
    assert not [r for r in out.results if r.benchmark == "all_reduce"]
    assert failure.log_excerpt is not None
    excerpt = failure.log_excerpt.splitlines()
    block_rows = _rows_printed(_blocks(planted)[0])
    assert [ln for ln in excerpt if _ROW.match(ln)] == block_rows
    assert "# Out of bounds values : 0 OK" in excerpt  # nccl-tests' footer, as printed
    assert len([r for r in out.results if r.metric == "avg_busbw"]) == 4


@pytest.mark.parametrize(
    "path", [GH200, DATA / "a100_p4d_2node_16gpu_legacy_error_column_mpirun_tagged_NCCL_DEBUG.txt"]
)
def test_a_failed_out_of_bounds_footer_is_a_wrong_result(path: Path) -> None:
    text = path.read_text()
    assert text.count("Out of bounds values : 0 OK") == 1
    out = parse("nccl-tests", text.replace("Out of bounds values : 0 OK", "Out of bounds values : 3 FAILED"))
    assert out.results == []
    (failure,) = out.failures
    assert failure.failure_class == "wrong_result" and "3 out of bounds values" in failure.message
    assert failure.log_excerpt is not None and "Out of bounds values : 3 FAILED" in failure.log_excerpt


def test_in_place_and_out_of_place_figures_match_the_printed_row() -> None:
    path = DATA / "h100_2node_smoke_allreduce_sendrecv_v2.17.8.txt"
    text = path.read_text()
    out = parse("nccl-tests", text)
    got = {
        (r.benchmark, r.params["size_bytes"], r.metric): r.value
        for r in out.results
        if "size_bytes" in r.params
    }
    names = ["all_reduce"] * 5 + ["sendrecv"] * 5
    columns = ("time_us", "algbw", "busbw")
    for name, row in zip(names, _rows_printed(text), strict=True):
        tokens = row.split()
        size = int(tokens[0])
        for i, metric in enumerate(columns):
            assert got[(name, size, metric)] == float(tokens[5 + i])
            assert got[(name, size, f"{metric}_inplace")] == float(tokens[9 + i])
    assert len(got) == 10 * 6
    inplace_time = next(r for r in out.results if r.metric == "time_us_inplace")
    assert (inplace_time.unit, inplace_time.direction) == ("us", "lower")


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
