"""Our per-rank counts and printed sizes equal the ones nccl-tests printed, row by row, in every log
of shared/data/nccl_tests (2 to 80 ranks, split-over-ranks collectives with non-power-of-two
worlds, sendrecv, the pre-2.13 layout)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bench_formats.nccl_tests import parse_runs
from bench_runner.collectives.core import (
    COLLECTIVES,
    DTYPE_SIZES,
    SPLIT_OVER_RANKS,
    normalize_dtype,
    plan_size,
    printed_count,
    size_sweep,
)

REPO = Path(__file__).resolve().parents[3]
DATA = Path(os.environ.get("BENCH_SHARED_DATA", REPO.parent / "shared" / "data")) / "nccl_tests"
LOGS = sorted(DATA.glob("*.txt"))

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data not found at {DATA}")


def test_every_printed_row_has_our_size_and_count() -> None:
    checked = rounded = 0
    for log in LOGS:
        runs, _ = parse_runs(log.read_text(errors="replace"))
        for run in runs:
            assert run.min_bytes is not None and run.max_bytes is not None
            # the sweep nccl-tests was asked for; rows past a "Reducing maxBytes" line are missing
            sweep = size_sweep(run.min_bytes, run.max_bytes, run.step_factor or 1, run.step_bytes or 0)
            assert len(run.rows) <= len(sweep), log.name
            for requested, row in zip(sweep, run.rows, strict=False):
                where = f"{log.name}: {run.collective} x{run.nranks} {row.type} -b {requested}"
                assert printed_count(run.collective, requested, row.type, run.nranks) == (
                    row.count,
                    row.size,
                ), where
                if run.collective in COLLECTIVES:
                    plan = plan_size(run.collective, requested, row.type, run.nranks)
                    assert (plan.count, plan.size_bytes) == (row.count, row.size), where
                tsize = DTYPE_SIZES[normalize_dtype(row.type)]
                if run.collective in SPLIT_OVER_RANKS and (requested // tsize) // run.nranks != row.count:
                    rounded += 1
                checked += 1
    # every row of the 13 logs with a table (the two FAILED ones have none)
    assert checked == 318
    # the rows where the 16-byte rounding decides (10 and 80 ranks): without it they differ
    assert rounded == 27


def test_split_collectives_round_each_rank_down_to_16_bytes() -> None:
    # 80 ranks, 64 MiB of doubles: 838860.8 per rank -> 104857 -> even (16 B) 104856
    p = plan_size("all_gather", 64 << 20, "double", 80)
    assert (p.count, p.size_bytes, p.send_elems, p.recv_elems) == (104856, 67107840, 104856, 8388480)
    p = plan_size("reduce_scatter", 64 << 20, "double", 80)
    assert (p.send_elems, p.recv_elems) == (8388480, 104856)
    p = plan_size("alltoall", 64 << 20, "double", 80)
    assert (p.send_elems, p.recv_elems, p.count) == (8388480, 8388480, 104856)
    # 1-byte types round to 16 elements, 2-byte to 8, 4-byte to 4
    assert printed_count("all_gather", 1000, "int8", 3) == (320, 960)
    assert printed_count("all_gather", 1000, "half", 3) == (160, 960)
    assert printed_count("all_gather", 1000, "float", 3) == (80, 960)
    assert printed_count("all_gather", 48, "float", 8) == (0, 0)  # the harness skips such sizes
    # the others keep the whole count
    assert printed_count("all_reduce", 1000, "float", 3) == (250, 1000)
    assert printed_count("sendrecv", 1001, "half", 80) == (500, 1000)
    with pytest.raises(ValueError):
        printed_count("allreduce", 8, "float", 2)
    with pytest.raises(ValueError):
        plan_size("sendrecv", 8, "float", 2)  # readable in logs, not something we run
