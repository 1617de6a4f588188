"""One rank of a collectives run: `python -m bench_runner.collectives.worker [options] COLLECTIVE...`.

Reads the torch.distributed env rendezvous (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK),
so it runs the same under our launcher, `torchrun`, ssh or `ip netns exec`. Rank 0 prints the
nccl-tests style text; with `--emit-json` it then prints one line `JSON_MARKER <json>` that the
launcher picks up.

Exit status, as nccl-tests, with or without `--emit-json`: WRONG_RESULT_EXIT on every rank when
any element was wrong (an "Out of bounds values : N FAILED" footer), 0 otherwise. Any other
non-zero status is a rank that did not finish. The launcher counts WRONG_RESULT_EXIT as a
finished rank and reads which sizes were wrong from rank 0's JSON line (`#wrong`, `out_of_bounds`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, TextIO

from .core import COLLECTIVES, DTYPE_SIZES, CollectiveRun, parse_size, render_text

if TYPE_CHECKING:
    from .backends import CollectiveBackend
    from .harness import SweepConfig

JSON_MARKER = "#@bench-runner-json"
WRONG_RESULT_EXIT = 7  # nccl-tests' status when a check failed (testNumResults)


def add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by the worker and `bench-runner collectives` (nccl-tests spellings)."""
    p.add_argument(
        "collectives",
        nargs="+",
        choices=sorted(COLLECTIVES),
        metavar="COLLECTIVE",
        help=f"one or more of {', '.join(sorted(COLLECTIVES))}",
    )
    p.add_argument("-b", "--minbytes", default="8", help="smallest size in bytes (K/M/G suffixes), default 8")
    p.add_argument("-e", "--maxbytes", default="1M", help="largest size in bytes, default 1M")
    p.add_argument("-f", "--stepfactor", type=int, default=2, help="multiply the size by this, default 2")
    p.add_argument("-i", "--stepbytes", default="0", help="add this many bytes instead (with -f 1)")
    p.add_argument("-d", "--datatype", default="float", help=f"one of {', '.join(DTYPE_SIZES)}")
    p.add_argument("-w", "--warmup_iters", type=int, default=5, help="warm-up iterations per size")
    p.add_argument("-n", "--iters", type=int, default=20, help="timed iterations per size")
    p.add_argument("-c", "--check", type=int, default=1, help="check results (#wrong), 1 or 0")
    p.add_argument(
        "--fault-rank",
        type=int,
        default=None,
        help="fault injection: corrupt this rank's contribution in the correctness pass",
    )
    p.add_argument("--backend", default="gloo", choices=["gloo", "nccl"], help="torch.distributed backend")


def sweep_configs(args: argparse.Namespace) -> list[SweepConfig]:
    from .harness import SweepConfig

    return [
        SweepConfig(
            collective=c,
            min_bytes=parse_size(args.minbytes),
            max_bytes=parse_size(args.maxbytes),
            step_factor=args.stepfactor,
            step_bytes=parse_size(args.stepbytes),
            dtype=args.datatype,
            warmup_iters=args.warmup_iters,
            iters=args.iters,
            check=bool(args.check),
            fault_rank=args.fault_rank,
        )
        for c in args.collectives
    ]


def any_wrong(runs: Iterable[CollectiveRun]) -> bool:
    """Whether any check of these runs failed (a wrong element or an out-of-bounds value)."""
    return any(r.total_wrong() > 0 or (r.out_of_bounds or 0) > 0 for r in runs)


def run_sweeps(
    backend: CollectiveBackend, cfgs: list[SweepConfig], *, emit_json: bool, out: TextIO | None = None
) -> int:
    """Every sweep on this rank; rank 0 writes the text (and the JSON line). The exit status."""
    from .harness import run_sweep

    out = out or sys.stdout
    runs = []
    for cfg in cfgs:
        run = run_sweep(backend, cfg)
        runs.append(run)
        if backend.rank == 0:
            out.write(render_text(run) + "\n")
            out.flush()
    if backend.rank == 0 and emit_json:
        out.write(JSON_MARKER + " " + json.dumps({"runs": [r.to_json() for r in runs]}) + "\n")
        out.flush()
    return WRONG_RESULT_EXIT if any_wrong(runs) else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_runner.collectives.worker")
    add_sweep_arguments(p)
    p.add_argument("--emit-json", action="store_true", help="rank 0 appends a JSON line for the launcher")
    p.add_argument("--timeout", type=float, default=120.0, help="process group timeout, seconds")
    args = p.parse_args(argv)

    from .torch_backend import TorchDistBackend

    backend = TorchDistBackend(args.backend, timeout_s=args.timeout)
    try:
        status = run_sweeps(backend, sweep_configs(args), emit_json=args.emit_json)
        backend.barrier()
    finally:
        backend.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
