"""The nccl-tests style measurement loop, run by every rank over one backend.

Per size and placement (out-of-place, then in-place): fill buffers, warm up, barrier, time `iters`
calls of the prepared operation with `time.perf_counter` (nothing else inside the loop), wait for
the device, average the per-op time across ranks; then refill with the predictable pattern, run
once more and count wrong elements on every rank. As nccl-tests:
- `#wrong` is the sum over ranks of the elements that differ from the expected result;
- `out_of_bounds` (the footer's "Out of bounds values") counts the checks that failed: one per
  rank, size and placement with any wrong element;
- a placement the backend has no true form of is not measured (never emulated with a copy);
  `CollectiveRun.not_measured` says which and why.
All sums over ranks (times, counts) are float64.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from .backends import PLACEMENTS, CollectiveBackend, PreparedOp
from .core import (
    COLLECTIVES,
    CollectiveRun,
    PlacementResult,
    SizeRow,
    algbw_gbs,
    bus_factor,
    normalize_dtype,
    plan_size,
    size_sweep,
)


@dataclass
class SweepConfig:
    collective: str = "all_reduce"
    min_bytes: int = 8
    max_bytes: int = 1 << 20
    step_factor: int = 2
    step_bytes: int = 0
    dtype: str = "float"
    warmup_iters: int = 5
    iters: int = 20
    check: bool = True
    fault_rank: int | None = None  # corrupt this rank's contribution in the correctness pass
    placements: tuple[str, ...] = PLACEMENTS
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.collective not in COLLECTIVES:
            raise ValueError(f"unknown collective {self.collective!r}; one of {sorted(COLLECTIVES)}")
        self.dtype = normalize_dtype(self.dtype)
        if self.iters < 1 or self.warmup_iters < 0:
            raise ValueError("iters must be >= 1 and warmup iters >= 0")
        unknown = [p for p in self.placements if p not in PLACEMENTS]
        if unknown:
            raise ValueError(f"unknown placement {unknown[0]!r}; one of {', '.join(PLACEMENTS)}")


def time_op(backend: CollectiveBackend, op: PreparedOp, iters: int, warmup_iters: int) -> float:
    """Seconds per operation on this rank (the lean timed loop)."""
    run = op.run
    for _ in range(warmup_iters):
        run()
    backend.synchronize()
    backend.barrier()
    start = time.perf_counter()
    for _ in range(iters):
        run()
    backend.synchronize()
    return (time.perf_counter() - start) / iters


@dataclass
class Check:
    """One correctness pass of one size and placement, summed over ranks."""

    wrong: int | None  # None: not checked (N/A)
    failed_ranks: int  # ranks that saw any wrong element (nccl-tests' out-of-bounds count)


def check_op(backend: CollectiveBackend, op: PreparedOp, fault: bool) -> Check:
    """Refill with the pattern (this rank's input corrupted when `fault`), run once, count."""
    op.fill(fault)
    op.run()
    backend.synchronize()
    local = op.count_wrong()
    # every rank takes part in the sum, checked or not
    wrong, failed, unchecked = backend.sum_values(
        [float(local or 0), 1.0 if local else 0.0, 1.0 if local is None else 0.0]
    )
    if unchecked == backend.world_size:
        return Check(None, 0)
    return Check(int(wrong), int(failed))


def run_sweep(backend: CollectiveBackend, cfg: SweepConfig) -> CollectiveRun:
    """Run the whole sweep on this rank; every rank returns the same (rank-averaged) CollectiveRun."""
    spec = COLLECTIVES[cfg.collective]
    n = backend.world_size
    factor = bus_factor(cfg.collective, n)
    devices = backend.gather_objects(
        {
            "rank": backend.rank,
            "pid": os.getpid(),
            "hostname": getattr(backend, "hostname", "?"),
            "device": getattr(backend, "local_rank", 0),
            "device_hex": getattr(backend, "device", "cpu"),
            "device_info": backend.device_info,
        }
    )
    unsupported = backend.unsupported_placements(cfg.collective)
    placements = [p for p in cfg.placements if p not in unsupported]
    run = CollectiveRun(
        collective=cfg.collective,
        nranks=n,
        dtype=cfg.dtype,
        warmup_iters=cfg.warmup_iters,
        iters=cfg.iters,
        min_bytes=cfg.min_bytes,
        max_bytes=cfg.max_bytes,
        step_factor=cfg.step_factor if cfg.step_factor > 1 else None,
        step_bytes=cfg.step_bytes if cfg.step_factor <= 1 else None,
        backend=backend.name,
        devices=sorted(devices, key=lambda d: d["rank"]),
        not_measured={p: why for p, why in unsupported.items() if p in cfg.placements},
        extra=dict(cfg.extra),
    )
    if cfg.fault_rank is not None:
        run.extra["fault_rank"] = cfg.fault_rank
    failed_checks = 0
    for requested in size_sweep(cfg.min_bytes, cfg.max_bytes, cfg.step_factor, cfg.step_bytes):
        plan = plan_size(cfg.collective, requested, cfg.dtype, n)
        if plan.count == 0:
            continue
        halves: dict[str, PlacementResult] = {}
        for placement in placements:
            op = backend.prepare(
                cfg.collective, cfg.dtype, plan.send_elems, plan.recv_elems, in_place=placement == "in_place"
            )
            op.fill(False)
            t_local = time_op(backend, op, cfg.iters, cfg.warmup_iters)
            (t_sum,) = backend.sum_values([t_local])
            t = t_sum / n
            wrong: int | None = None
            if cfg.check:
                check = check_op(backend, op, cfg.fault_rank == backend.rank)
                wrong = check.wrong
                failed_checks += check.failed_ranks
            alg = algbw_gbs(plan.size_bytes, t)
            halves[placement] = PlacementResult(time_us=t * 1e6, algbw=alg, busbw=alg * factor, wrong=wrong)
        run.rows.append(
            SizeRow(
                size=plan.size_bytes,
                count=plan.count,
                type=cfg.dtype,
                redop=spec.redop,
                root=spec.root,
                out_of_place=halves.get("out_of_place"),
                in_place=halves.get("in_place"),
            )
        )
    run.avg_busbw = run.computed_avg_busbw()
    run.out_of_bounds = failed_checks
    return run
