"""MLX `mx.distributed` backend (ring over TCP, jaccl over Thunderbolt RDMA) — kept thin.

MLX cannot run here (Apple silicon / MLX CUDA only), so this module is two parts:
- pure command building: the JSON hostfile `mlx.launch` reads ({"backend", "envs", "hosts": [{"ssh",
  "ips", "rdma"}]}) and the `mlx.launch --backend ring|jaccl --hostfile FILE -- script args` line
  (flags as in mlx's `_distributed_utils/launch.py`); both tested;
- the worker (`python mlx_backend.py COLLECTIVE ...`, started by mlx.launch on every host), which
  drives the same harness through `MlxBackend`. Hardware calls live only in `MlxBackend`.

MLX arrays are immutable, so "in-place" runs the same call as out-of-place; mx.distributed has
no broadcast or alltoall, so those collectives are refused rather than emulated.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backends import FAULT_STRIDE, PreparedOp, pattern_modulus

MLX_BACKENDS = ("ring", "jaccl")
MLX_COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter")
MLX_DTYPES = {"float": "float32", "half": "float16", "bfloat16": "bfloat16", "int32": "int32"}


@dataclass
class MlxHost:
    ssh: str
    ips: list[str] = field(default_factory=list)
    rdma: list[str | None] = field(default_factory=list)  # jaccl: RDMA device to each peer (None for self)


def build_mlx_hostfile(hosts: list[MlxHost], backend: str, envs: list[str] | None = None) -> dict[str, Any]:
    if backend not in MLX_BACKENDS:
        raise ValueError(f"MLX backend must be one of {MLX_BACKENDS}, got {backend!r}")
    if backend == "jaccl":
        for i, h in enumerate(hosts):
            if len(h.rdma) != len(hosts) or h.rdma[i] is not None:
                raise ValueError(f"jaccl host {h.ssh}: rdma needs one entry per host, null for itself")
    return {
        "backend": backend,
        "envs": list(envs or []),
        "hosts": [{"ssh": h.ssh, "ips": list(h.ips), "rdma": list(h.rdma)} for h in hosts],
    }


def write_mlx_hostfile(
    path: str | Path,
    hosts: list[MlxHost],
    backend: str,
    envs: list[str] | None = None,
) -> Path:
    path = Path(path)
    path.write_text(json.dumps(build_mlx_hostfile(hosts, backend, envs), indent=2) + "\n")
    return path


def build_mlx_launch_command(
    hostfile: str | Path,
    backend: str,
    worker_args: list[str],
    *,
    envs: list[str] | None = None,
    python: str | None = None,
    launcher: str = "mlx.launch",
    verbose: bool = False,
) -> list[str]:
    """`mlx.launch --backend B --hostfile F [--env K=V]... [--python P] -- <this file> args...`."""
    if backend not in MLX_BACKENDS:
        raise ValueError(f"MLX backend must be one of {MLX_BACKENDS}, got {backend!r}")
    bad = [c for c in worker_args if c in ("broadcast", "alltoall")]
    if bad:
        raise ValueError(f"mx.distributed has no {', '.join(bad)}")
    cmd = [launcher, "--backend", backend, "--hostfile", str(hostfile)]
    for env in envs or []:
        cmd += ["--env", env]
    if python:
        cmd += ["--python", python]
    if verbose:
        cmd.append("--verbose")
    cmd += ["--", str(Path(__file__).resolve()), *worker_args, "--mlx-backend", backend, "--emit-json"]
    return cmd


class MlxBackend:  # pragma: no cover - needs MLX on Apple silicon
    """A rank of an mx.distributed group."""

    def __init__(self, backend: str = "ring") -> None:
        import mlx.core as mx

        self.mx = mx
        self.name = f"mlx-{backend}"
        self.group = mx.distributed.init(strict=True, backend=backend)
        self.rank = self.group.rank()
        self.world_size = self.group.size()
        self.local_rank = 0
        self.hostname = socket.gethostname()
        self.device = str(mx.default_device())
        self.device_info = f"MLX {mx.__version__} {self.device}"

    def _pattern(self, rank: int, start: int, n: int, mod: int, dtype: str) -> Any:
        mx = self.mx
        idx = mx.arange(start, start + n, dtype=mx.int32)
        return ((idx * 7 + rank * 3 + 1) % mod).astype(getattr(mx, MLX_DTYPES[dtype]))

    def prepare(
        self, collective: str, dtype: str, send_elems: int, recv_elems: int, in_place: bool
    ) -> PreparedOp:
        mx = self.mx
        dist = mx.distributed
        n, r = self.world_size, self.rank
        mod = pattern_modulus(dtype, n)
        state: dict[str, Any] = {"x": self._pattern(r, 0, send_elems, mod, dtype), "out": None}
        if collective == "all_reduce":
            fn = dist.all_sum
        elif collective == "all_gather":
            fn = dist.all_gather
        elif collective == "reduce_scatter" and hasattr(dist, "sum_scatter"):
            fn = dist.sum_scatter
        else:
            raise ValueError(f"mx.distributed cannot run {collective}")
        evaluate = mx.eval

        def run() -> None:
            out = fn(state["x"], group=self.group)
            evaluate(out)
            state["out"] = out

        def fill(fault: bool) -> None:
            x = self._pattern(r, 0, send_elems, mod, dtype)
            if fault:
                bump = (mx.arange(send_elems) % FAULT_STRIDE == 0).astype(x.dtype)
                x = x + bump
            evaluate(x)
            state["x"] = x

        def wrong() -> int | None:
            if collective == "all_reduce":
                exp = sum(self._pattern(q, 0, recv_elems, mod, dtype) for q in range(n))
            elif collective == "all_gather":
                exp = mx.concatenate([self._pattern(q, 0, send_elems, mod, dtype) for q in range(n)])
            else:
                exp = sum(self._pattern(q, r * recv_elems, recv_elems, mod, dtype) for q in range(n))
            return int((state["out"] != exp).sum().item())

        return PreparedOp(run, fill, wrong)

    def barrier(self) -> None:
        self.mx.eval(self.mx.distributed.all_sum(self.mx.zeros(1), group=self.group))

    def synchronize(self) -> None:
        self.mx.synchronize()

    def sum_scalar(self, value: float) -> float:
        out = self.mx.distributed.all_sum(self.mx.array([value], dtype=self.mx.float32), group=self.group)
        return float(out.item())

    def gather_objects(self, obj: Any) -> list[Any]:
        mx = self.mx
        raw = json.dumps(obj).encode()[:1024].ljust(1024, b" ")
        arr = mx.array(list(raw), dtype=mx.uint8)
        allb = mx.distributed.all_gather(arr, group=self.group)
        data = bytes(allb.tolist())
        return [
            json.loads(data[i * 1024 : (i + 1) * 1024].decode().strip() or "null")
            for i in range(self.world_size)
        ]

    def close(self) -> None:
        pass


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - runs under mlx.launch
    import argparse

    from .core import render_text
    from .harness import run_sweep
    from .worker import JSON_MARKER, add_sweep_arguments, sweep_configs

    p = argparse.ArgumentParser(prog="mlx collectives worker")
    add_sweep_arguments(p)
    p.add_argument("--mlx-backend", default=os.environ.get("BENCH_MLX_BACKEND", "ring"), choices=MLX_BACKENDS)
    p.add_argument("--emit-json", action="store_true")
    args = p.parse_args(argv)
    backend = MlxBackend(args.mlx_backend)
    runs = []
    for cfg in sweep_configs(args):
        cfg.placements = ("out_of_place",)
        run = run_sweep(backend, cfg)
        runs.append(run)
        if backend.rank == 0:
            sys.stdout.write(render_text(run) + "\n")
    if backend.rank == 0 and args.emit_json:
        sys.stdout.write(JSON_MARKER + " " + json.dumps({"runs": [r.to_json() for r in runs]}) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":  # pragma: no cover
    if __package__ in (None, ""):
        # started as a script by mlx.launch: make the package importable and rerun as a module
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from bench_runner.collectives.mlx_backend import main as _main

        sys.exit(_main())
    sys.exit(main())
