"""A collective's bandwidth sweep and the records it becomes: shared by the runner's own
collectives harness and the nccl-tests importer.

Definitions follow NVIDIA nccl-tests (see METRICS.md): busbw = algbw x factor, with factor
all_reduce 2(n-1)/n; reduce_scatter, all_gather, alltoall (n-1)/n; broadcast, reduce, sendrecv 1.

Records, per size: `busbw`, `algbw` (GB/s, higher is better) and `time_us` (lower is better) of
the out-of-place half, and `busbw_inplace`, `algbw_inplace`, `time_us_inplace` of the in-place
half, with params {collective, nranks, dtype, size_bytes[, backend]}. Per run: `avg_busbw` (the
"Avg bus bandwidth" line) with the sweep bounds in its params.
A run with any `#wrong` above zero, or with out-of-bounds values, gives no numbers at all (they
measured a broken collective, and nccl-tests exits non-zero for it): only one `wrong_result`
FailureRecord naming the sizes, with the rows in its log excerpt.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .records import Direction, FailureRecord, ResultRecord

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


def _placement_fields(p: PlacementResult | None) -> str:
    if p is None:
        return ""
    wrong = "N/A" if p.wrong is None else str(p.wrong)
    return f"  {p.time_us:g} {p.algbw:g} {p.busbw:g} {wrong}"


def rows_excerpt(run: CollectiveRun) -> str:
    """The rows in nccl-tests' column order (size count type redop root, then time algbw busbw
    #wrong per half), as the evidence of a failure."""
    lines = []
    for row in run.rows:
        root = "" if row.root is None else f" {row.root}"
        head = f"{row.size} {row.count} {row.type} {row.redop}{root}"
        lines.append(head + _placement_fields(row.out_of_place) + _placement_fields(row.in_place))
    return "\n".join(lines)


def wrong_sizes(run: CollectiveRun) -> list[tuple[int, int]]:
    """(size, wrong elements) for every row with a `#wrong` above zero."""
    out = []
    for row in run.rows:
        wrong = sum((p.wrong or 0) for _, p in row.placements())
        if wrong > 0:
            out.append((row.size, wrong))
    return out


def wrong_message(run: CollectiveRun, name: str | None = None) -> str | None:
    """Why `run` measured a broken collective (wrong elements, out-of-bounds values), or None."""
    bad = wrong_sizes(run)
    parts = []
    if bad:
        total = sum(w for _, w in bad)
        sizes = ", ".join(f"{s} B: {w}" for s, w in bad[:20])
        parts.append(f"{total} wrong elements ({sizes})")
    if run.out_of_bounds:
        parts.append(f"{run.out_of_bounds} out of bounds values")
    if not parts:
        return None
    return f"{name or run.collective} over {run.nranks} ranks: " + "; ".join(parts)


def run_to_records(
    run: CollectiveRun,
    *,
    suite: str = SUITE,
    extra_params: dict[str, Any] | None = None,
) -> tuple[list[ResultRecord], list[FailureRecord]]:
    base = base_params(run, extra_params)
    bench = run.collective
    wrong = wrong_message(run)
    if wrong is not None:
        # Not one number from a run that computed wrong values: its timings are of a broken
        # collective, and nccl-tests itself exits non-zero for it.
        failure = FailureRecord(suite, bench, "wrong_result", wrong, dict(base), rows_excerpt(run) or None)
        return [], [failure]
    results: list[ResultRecord] = []
    for row in run.rows:
        params = {**base, "size_bytes": row.size}
        for suffix, p in (("", row.out_of_place), ("_inplace", row.in_place)):
            if p is None:
                continue
            figures: tuple[tuple[str, float, str, Direction], ...] = (
                ("busbw", p.busbw, "GB/s", "higher"),
                ("algbw", p.algbw, "GB/s", "higher"),
                ("time_us", p.time_us, "us", "lower"),
            )
            for metric, value, unit, direction in figures:
                results.append(
                    ResultRecord(suite, bench, metric + suffix, value, unit, direction, dict(params))
                )
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
