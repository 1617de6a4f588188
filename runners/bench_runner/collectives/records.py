"""Turn a collectives run (ours or an imported nccl-tests log) into ResultRecords and FailureRecords.

Per size: `busbw` (out-of-place), `busbw_inplace`, `algbw` (GB/s, higher is better) and `time_us`
(lower is better), with params {collective, nranks, dtype, size_bytes[, backend]}. Per run:
`avg_busbw` (the "Avg bus bandwidth" line) with the sweep bounds in its params.
A size whose `#wrong` is above zero gives no numbers (they measured a broken collective): the run
gets one `wrong_result` FailureRecord naming the sizes, and no `avg_busbw`.
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


def run_to_records(
    run: CollectiveRun,
    *,
    suite: str = SUITE,
    extra_params: dict[str, Any] | None = None,
) -> tuple[list[ResultRecord], list[FailureRecord]]:
    results: list[ResultRecord] = []
    failures: list[FailureRecord] = []
    base = base_params(run, extra_params)
    bench = run.collective
    wrong_sizes: list[tuple[int, int]] = []
    for row in run.rows:
        wrong = sum((p.wrong or 0) for _, p in row.placements())
        if wrong > 0:
            wrong_sizes.append((row.size, wrong))
            continue
        params = {**base, "size_bytes": row.size}
        oop, ip = row.out_of_place, row.in_place
        if oop is not None:
            results.append(ResultRecord(suite, bench, "busbw", oop.busbw, "GB/s", "higher", dict(params)))
            results.append(ResultRecord(suite, bench, "algbw", oop.algbw, "GB/s", "higher", dict(params)))
            results.append(ResultRecord(suite, bench, "time_us", oop.time_us, "us", "lower", dict(params)))
        if ip is not None:
            results.append(
                ResultRecord(suite, bench, "busbw_inplace", ip.busbw, "GB/s", "higher", dict(params))
            )
    if wrong_sizes:
        total = sum(w for _, w in wrong_sizes)
        sizes = ", ".join(f"{s} B: {w}" for s, w in wrong_sizes[:20])
        failures.append(
            FailureRecord(
                suite,
                bench,
                "wrong_result",
                f"{run.collective} over {run.nranks} ranks: {total} wrong elements ({sizes})",
                dict(base),
                None,
            )
        )
    elif run.rows:
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
    if run.out_of_bounds:
        failures.append(
            FailureRecord(
                suite, bench, "wrong_result", f"{run.out_of_bounds} out of bounds values", dict(base)
            )
        )
    return results, failures
