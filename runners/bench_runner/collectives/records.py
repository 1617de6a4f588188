"""Turn a collectives run (ours or an imported nccl-tests log) into ResultRecords and FailureRecords.

Per size, out-of-place: `busbw`, `algbw` (GB/s, higher is better) and `time_us` (lower is better);
in-place: `busbw_inplace`, `algbw_inplace`, `time_us_inplace`; with params {collective, nranks,
dtype, size_bytes[, backend]}. A placement the run did not measure gives no records (torch has
no out-of-place all_reduce or broadcast: those have only the in-place ones; `run_context` says
why). Per run: `avg_busbw` (the "Avg bus bandwidth" line, the mean over every measured half-row)
with the sweep bounds in its params.
A size whose `#wrong` is above zero gives no numbers (they measured a broken collective). A run
with any wrong element or out-of-bounds value gets one `wrong_result` FailureRecord naming the
sizes and counts, and no `avg_busbw`.
"""

from __future__ import annotations

import math
from typing import Any

from ..records import FailureRecord, ResultRecord
from .core import CollectiveRun

SUITE = "collectives"


def base_params(run: CollectiveRun, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"collective": run.collective, "nranks": run.nranks, "dtype": run.dtype}
    if run.backend:
        params["backend"] = run.backend
    params.update(extra or {})
    return params


def run_context(run: CollectiveRun) -> dict[str, Any]:
    """What a reader of the numbers needs besides the params: which placements were measured."""
    measured = sorted({name for row in run.rows for name, _ in row.placements()})
    context: dict[str, Any] = {"placements": measured}
    if run.not_measured:
        context["not_measured"] = dict(run.not_measured)
    return context


_PLACEMENT_METRICS = {
    "out_of_place": ("busbw", "algbw", "time_us"),
    "in_place": ("busbw_inplace", "algbw_inplace", "time_us_inplace"),
}


def run_to_records(
    run: CollectiveRun,
    *,
    suite: str = SUITE,
    extra_params: dict[str, Any] | None = None,
) -> tuple[list[ResultRecord], list[FailureRecord]]:
    results: list[ResultRecord] = []
    base = base_params(run, extra_params)
    bench = run.collective
    wrong_sizes: list[tuple[int, int]] = []
    for row in run.rows:
        wrong = sum((p.wrong or 0) for _, p in row.placements())
        if wrong > 0:
            wrong_sizes.append((row.size, wrong))
            continue
        params = {**base, "size_bytes": row.size}
        for placement, p in row.placements():
            busbw, algbw, time_us = _PLACEMENT_METRICS[placement]
            results.append(ResultRecord(suite, bench, busbw, p.busbw, "GB/s", "higher", dict(params)))
            results.append(ResultRecord(suite, bench, algbw, p.algbw, "GB/s", "higher", dict(params)))
            results.append(ResultRecord(suite, bench, time_us, p.time_us, "us", "lower", dict(params)))
    if wrong_sizes or run.out_of_bounds:
        problems = []
        if wrong_sizes:
            total = sum(w for _, w in wrong_sizes)
            sizes = ", ".join(f"{s} B: {w}" for s, w in wrong_sizes[:20])
            problems.append(f"{total} wrong elements ({sizes})")
        if run.out_of_bounds:
            problems.append(f"{run.out_of_bounds} out of bounds values")
        message = f"{run.collective} over {run.nranks} ranks: {'; '.join(problems)}"
        return results, [FailureRecord(suite, bench, "wrong_result", message, dict(base), None)]
    if run.rows:
        avg = run.avg_busbw if run.avg_busbw is not None else run.computed_avg_busbw()
        if math.isfinite(avg):
            params = {**base, "min_bytes": run.rows[0].size, "max_bytes": run.rows[-1].size}
            busbws = run.busbw_values()
            results.append(
                ResultRecord(
                    suite,
                    bench,
                    "avg_busbw",
                    avg,
                    "GB/s",
                    "higher",
                    params,
                    samples=busbws,
                    stats={"mean": avg, "max": max(busbws), "min": min(busbws)},
                )
            )
    return results, []
