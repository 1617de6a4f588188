"""A collective's bandwidth sweep and the records it becomes: shared by the runner's own
collectives harness and the nccl-tests importer.

Definitions follow NVIDIA nccl-tests (see METRICS.md): busbw = algbw x factor, with factor
all_reduce 2(n-1)/n; reduce_scatter, all_gather, alltoall (n-1)/n; broadcast, reduce, sendrecv 1.

Records, per size: `busbw` (out-of-place), `busbw_inplace`, `algbw` (GB/s, higher is better) and
`time_us` (lower is better), with params {collective, nranks, dtype, size_bytes[, backend]}. Per run:
`avg_busbw` (the "Avg bus bandwidth" line) with the sweep bounds in its params.
A size whose `#wrong` is above zero gives no numbers (they measured a broken collective): the run
gets one `wrong_result` FailureRecord naming the sizes, and no `avg_busbw`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .records import FailureRecord, ResultRecord

# Every collective whose bus factor is known (the runner runs a subset of them).
KNOWN_FACTOR_NAMES = (
    "all_reduce",
    "all_gather",
    "reduce_scatter",
    "alltoall",
    "broadcast",
    "reduce",
    "sendrecv",
    "gather",
    "scatter",
    "hypercube",
)


def bus_factor(collective: str, nranks: int) -> float:
    """The nccl-tests bus bandwidth factor for `collective` over `nranks` ranks."""
    if nranks < 1:
        raise ValueError(f"nranks must be >= 1, got {nranks}")
    n = float(nranks)
    if collective == "all_reduce":
        return 2.0 * (n - 1.0) / n
    if collective in ("all_gather", "reduce_scatter", "alltoall", "gather", "scatter", "hypercube"):
        return (n - 1.0) / n
    if collective in ("broadcast", "reduce", "sendrecv"):
        return 1.0
    raise ValueError(f"unknown collective {collective!r}")


@dataclass
class PlacementResult:
    """One half of a row: out-of-place or in-place."""

    time_us: float
    algbw: float
    busbw: float
    wrong: int | None  # None prints as N/A (not checked)
    error: float | None = None  # legacy nccl-tests `error` column (max abs deviation)


@dataclass
class SizeRow:
    size: int
    count: int
    type: str
    redop: str
    root: int | None
    out_of_place: PlacementResult | None
    in_place: PlacementResult | None

    def placements(self) -> list[tuple[str, PlacementResult]]:
        out = []
        if self.out_of_place is not None:
            out.append(("out_of_place", self.out_of_place))
        if self.in_place is not None:
            out.append(("in_place", self.in_place))
        return out


@dataclass
class CollectiveRun:
    """One collective's sweep, as our harness measures it or as a nccl-tests log prints it."""

    collective: str
    nranks: int
    dtype: str
    rows: list[SizeRow] = field(default_factory=list)
    avg_busbw: float | None = None  # as printed (or computed for our own runs)
    warmup_iters: int | None = None
    iters: int | None = None
    min_bytes: int | None = None
    max_bytes: int | None = None
    step_factor: int | None = None
    step_bytes: int | None = None
    backend: str | None = None
    devices: list[dict[str, Any]] = field(default_factory=list)
    out_of_bounds: int | None = None  # as nccl-tests: checks (rank x size x placement) that failed
    # placement -> why this backend cannot measure it (e.g. no out-of-place form): never emulated
    not_measured: dict[str, str] = field(default_factory=dict)
    version: str | None = None
    legacy_error_column: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def busbw_values(self) -> list[float]:
        return [p.busbw for row in self.rows for _, p in row.placements()]

    def computed_avg_busbw(self) -> float:
        values = self.busbw_values()
        return sum(values) / len(values) if values else 0.0

    def total_wrong(self) -> int:
        return sum(p.wrong or 0 for row in self.rows for _, p in row.placements())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CollectiveRun:
        rows = []
        for r in data.get("rows", []):
            oop = PlacementResult(**r["out_of_place"]) if r.get("out_of_place") else None
            ip = PlacementResult(**r["in_place"]) if r.get("in_place") else None
            rows.append(SizeRow(r["size"], r["count"], r["type"], r["redop"], r.get("root"), oop, ip))
        fields = {k: v for k, v in data.items() if k != "rows" and k in cls.__dataclass_fields__}
        return cls(rows=rows, **fields)


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
