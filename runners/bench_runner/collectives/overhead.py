"""How much bandwidth the harness loses against a bare torch.distributed loop.

`measure_busbw_ratio` starts `world_size` local gloo ranks. In one process group, for every size,
each of `rounds` rounds times both, back to back (which goes first alternates):
- the harness: `harness.time_op` on the harness's own prepared in-place all_reduce (the same
  operation as the bare loop), time averaged across ranks as in a normal sweep;
- a bare loop: `time.perf_counter()` around N `dist.all_reduce(buf)` calls and a closing barrier.
A round's ratio is harness busbw / bare busbw (bare time / harness time) from that round alone,
so load that comes and goes on the machine hits both sides of it alike; a size's `ratio` is the
median over its rounds, so one disturbed round cannot decide it. It should be near (or above) 1.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

from .core import algbw_gbs, bus_factor, plan_size, size_sweep

MARKER = "#@bench-runner-overhead"
# Many short rounds rather than a few long ones: the two sides of a round run close together in
# time (so they share the machine's load), and a median over nine needs five bad rounds to move.
ITERS, ROUNDS = 10, 9


def _bare_loop(dist: Any, buf: Any, iters: int) -> float:
    dist.barrier()
    start = time.perf_counter()
    for _ in range(iters):
        dist.all_reduce(buf)
    dist.barrier()
    return (time.perf_counter() - start) / iters


def _worker(args: argparse.Namespace) -> int:
    import torch.distributed as dist

    from .harness import time_op
    from .torch_backend import TorchDistBackend

    backend = TorchDistBackend("gloo")
    n = backend.world_size
    factor = bus_factor("all_reduce", n)

    def mean_over_ranks(seconds: float) -> float:
        (total,) = backend.sum_values([seconds])
        return total / n

    rows = []
    try:
        for requested in size_sweep(args.min_bytes, args.max_bytes, args.factor):
            plan = plan_size("all_reduce", requested, "float", n)
            op = backend.prepare("all_reduce", "float", plan.send_elems, plan.recv_elems, in_place=True)
            op.fill(False)
            buf = backend.torch.zeros(plan.recv_elems, dtype=backend.torch.float32)
            for _ in range(args.warmup):
                op.run()
                dist.all_reduce(buf)
            harness_s: list[float] = []
            bare_s: list[float] = []
            for i in range(args.rounds):
                # alternate which side goes first, so slow drift on a busy machine hits both
                if i % 2 == 0:
                    harness_s.append(mean_over_ranks(time_op(backend, op, args.iters, 0)))
                    bare_s.append(mean_over_ranks(_bare_loop(dist, buf, args.iters)))
                else:
                    bare_s.append(mean_over_ranks(_bare_loop(dist, buf, args.iters)))
                    harness_s.append(mean_over_ranks(time_op(backend, op, args.iters, 0)))
            rows.append(size_row(plan.size_bytes, factor, harness_s, bare_s))
        if backend.rank == 0:
            print(MARKER + " " + json.dumps(rows), flush=True)
        backend.barrier()
    finally:
        backend.close()
    return 0


def size_row(size_bytes: int, factor: float, harness_s: list[float], bare_s: list[float]) -> dict[str, Any]:
    """One size's comparison from its rounds (seconds per op, one entry per round and side)."""
    ratios = [bare / harness for harness, bare in zip(harness_s, bare_s, strict=True)]
    harness_t, bare_t = statistics.median(harness_s), statistics.median(bare_s)
    return {
        "size": size_bytes,
        "ratio": statistics.median(ratios),
        "round_ratios": ratios,
        "harness_busbw": algbw_gbs(size_bytes, harness_t) * factor,
        "bare_busbw": algbw_gbs(size_bytes, bare_t) * factor,
        "harness_time_us": harness_t * 1e6,
        "bare_time_us": bare_t * 1e6,
    }


def measure_busbw_ratio(
    world_size: int = 2,
    min_bytes: int = 1 << 20,
    max_bytes: int = 64 << 20,
    *,
    factor: int = 2,
    iters: int = ITERS,
    warmup: int = 3,
    rounds: int = ROUNDS,
    timeout: float = 600.0,
) -> dict[str, Any]:
    """Harness vs bare-loop all_reduce bus bandwidth (gloo, local ranks).

    Returns {"rows": [{size, ratio, round_ratios, harness_busbw, bare_busbw, ...}],
    "busbw_ratio_min_1mb": float, "world_size", "iters", "rounds"}: a row's ratio is the median of
    its rounds' ratios, its busbw figures come from the median times; busbw_ratio_min_1mb is the
    smallest ratio over sizes >= 1 MiB (or over all sizes when none is that large).
    """
    from .launcher import HostSpec, build_rank_commands, free_port, launch

    worker_args = [
        "--worker",
        "--min-bytes",
        str(min_bytes),
        "--max-bytes",
        str(max_bytes),
        "--factor",
        str(factor),
        "--iters",
        str(iters),
        "--warmup",
        str(warmup),
        "--rounds",
        str(rounds),
    ]
    cmds = build_rank_commands(
        [HostSpec("localhost", "127.0.0.1", world_size)],
        worker_args,
        master_port=free_port(),
        module="bench_runner.collectives.overhead",
    )
    result = launch(cmds, timeout=timeout)
    rows: list[dict[str, Any]] = []
    for line in result.rank0_stdout.splitlines():
        if line.startswith(MARKER):
            rows = json.loads(line[len(MARKER) :])
    if not rows:
        raise RuntimeError("overhead worker printed no results")
    big = [r["ratio"] for r in rows if r["size"] >= (1 << 20)] or [r["ratio"] for r in rows]
    return {
        "rows": rows,
        "busbw_ratio_min_1mb": min(big),
        "world_size": world_size,
        "iters": iters,
        "rounds": rounds,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_runner.collectives.overhead")
    p.add_argument("--worker", action="store_true")
    p.add_argument("--np", type=int, default=2)
    p.add_argument("--min-bytes", type=int, default=1 << 20)
    p.add_argument("--max-bytes", type=int, default=64 << 20)
    p.add_argument("--factor", type=int, default=2)
    p.add_argument("--iters", type=int, default=ITERS)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=ROUNDS)
    args = p.parse_args(argv)
    if args.worker:
        return _worker(args)
    out = measure_busbw_ratio(
        args.np,
        args.min_bytes,
        args.max_bytes,
        factor=args.factor,
        iters=args.iters,
        warmup=args.warmup,
        rounds=args.rounds,
    )
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
