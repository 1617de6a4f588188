"""The nccl-tests style measurement loop, run by every rank over one backend.

Per size and placement (out-of-place, then in-place): fill buffers, warm up, barrier, time `iters`
calls of the prepared operation with `time.perf_counter` (nothing else inside the loop), wait for
the device, average the per-op time across ranks; then refill with the predictable pattern, run
once more and count wrong elements on every rank (summed over ranks, as nccl-tests' `#wrong`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from .backends import CollectiveBackend, PreparedOp
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
    placements: tuple[str, ...] = ("out_of_place", "in_place")
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.collective not in COLLECTIVES:
            raise ValueError(f"unknown collective {self.collective!r}; one of {sorted(COLLECTIVES)}")
        self.dtype = normalize_dtype(self.dtype)
        if self.iters < 1 or self.warmup_iters < 0:
            raise ValueError("iters must be >= 1 and warmup iters >= 0")


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
        extra=dict(cfg.extra),
    )
    if cfg.fault_rank is not None:
        run.extra["fault_rank"] = cfg.fault_rank
    for requested in size_sweep(cfg.min_bytes, cfg.max_bytes, cfg.step_factor, cfg.step_bytes):
        plan = plan_size(cfg.collective, requested, cfg.dtype, n)
        if plan.count == 0:
            continue
        halves: dict[str, PlacementResult] = {}
        for placement in cfg.placements:
            op = backend.prepare(
                cfg.collective, cfg.dtype, plan.send_elems, plan.recv_elems, in_place=placement == "in_place"
            )
            op.fill(False)
            t_local = time_op(backend, op, cfg.iters, cfg.warmup_iters)
            t = backend.sum_scalar(t_local) / n
            wrong: int | None = None
            if cfg.check:
                op.fill(cfg.fault_rank == backend.rank)
                op.run()
                backend.synchronize()
                local = op.count_wrong()
                # every rank takes part in the sum; -1 marks "not checked" (N/A)
                total = backend.sum_scalar(float(local) if local is not None else -1.0)
                wrong = None if local is None else int(round(total))
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
    run.out_of_bounds = 0
    return run
