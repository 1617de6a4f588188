"""How much bandwidth the harness loses against a bare torch.distributed loop.

`measure_busbw_ratio` starts `world_size` local gloo ranks. In one process group, for every size,
it alternates (`rounds` times) between
- the harness: `harness.time_op` on the harness's own prepared in-place all_reduce (the same
  operation as the bare loop), time averaged across ranks as in a normal sweep;
- a bare loop: `time.perf_counter()` around N `dist.all_reduce(buf)` calls and a closing barrier;
and keeps each side's best round (the least disturbed by other load on the machine). The ratio
harness_busbw / bare_busbw should be near (or above) 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from .core import algbw_gbs, bus_factor, plan_size, size_sweep

MARKER = "#@bench-runner-overhead"


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
            best_h = best_b = float("inf")
            for i in range(args.rounds):
                # alternate which side goes first, so slow drift on a busy machine hits both
                if i % 2 == 0:
                    t_h = mean_over_ranks(time_op(backend, op, args.iters, 0))
                    t_b = mean_over_ranks(_bare_loop(dist, buf, args.iters))
                else:
                    t_b = mean_over_ranks(_bare_loop(dist, buf, args.iters))
                    t_h = mean_over_ranks(time_op(backend, op, args.iters, 0))
                best_h, best_b = min(best_h, t_h), min(best_b, t_b)
            h_bw = algbw_gbs(plan.size_bytes, best_h) * factor
            b_bw = algbw_gbs(plan.size_bytes, best_b) * factor
            rows.append(
                {
                    "size": plan.size_bytes,
                    "harness_busbw": h_bw,
                    "bare_busbw": b_bw,
                    "ratio": h_bw / b_bw if b_bw > 0 else 0.0,
                    "harness_time_us": best_h * 1e6,
                    "bare_time_us": best_b * 1e6,
                }
            )
        if backend.rank == 0:
            print(MARKER + " " + json.dumps(rows), flush=True)
        backend.barrier()
    finally:
        backend.close()
    return 0


def measure_busbw_ratio(
    world_size: int = 2,
    min_bytes: int = 1 << 20,
    max_bytes: int = 64 << 20,
    *,
    factor: int = 2,
    iters: int = 20,
    warmup: int = 3,
    rounds: int = 5,
    timeout: float = 600.0,
) -> dict[str, Any]:
    """Harness vs bare-loop all_reduce bus bandwidth (gloo, local ranks).

    Returns {"rows": [{size, harness_busbw, bare_busbw, ratio, ...}], "busbw_ratio_min_1mb": float,
    "world_size", "iters", "rounds"}; busbw_ratio_min_1mb is the smallest ratio over sizes >= 1 MiB
    (or over all sizes when none is that large).
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
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=5)
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
