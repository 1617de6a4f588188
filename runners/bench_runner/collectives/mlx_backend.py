"""MLX `mx.distributed` backend (ring over TCP, jaccl over Thunderbolt RDMA) — kept thin.

MLX cannot run here (Apple silicon / MLX CUDA only), so this module is two parts:
- pure command building: the JSON hostfile `mlx.launch` reads ({"backend", "envs", "hosts": [{"ssh",
  "ips", "rdma"}]}) and the `mlx.launch --backend ring|jaccl --hostfile FILE -- script args` line
  (flags as in mlx's `_distributed_utils/launch.py`); both tested;
- the worker (`python mlx_backend.py COLLECTIVE ...`, started by mlx.launch on every host), which
  drives the same harness through `MlxBackend`. Hardware calls live only in `MlxBackend`.

MLX arrays are immutable and every mx.distributed call returns a new array, so only the
out-of-place half is measured (the run's `not_measured` says so); mx.distributed has no
broadcast or alltoall, so those collectives are refused rather than emulated.

Sums over ranks (times, wrong-element counts) are float64: each rank's values travel as raw
float64 bytes in one all_gather and are added in Python in rank order (`sum_over_ranks`), not by
an all_sum in float32 (Metal has no float64), which would round a count above 2**24 and times to
about 7 digits.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .backends import (
    Bits,
    PreparedOp,
    rank_input,
    sum_over_ranks,
    wrong_elements,
)
from .core import DTYPE_SIZES

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


def pack_floats(values: Sequence[float]) -> bytes:
    """One rank's values as little-endian float64 bytes (what `sum_values` all-gathers)."""
    return struct.pack(f"<{len(values)}d", *values)


def unpack_rank_floats(raw: bytes, world_size: int) -> list[list[float]]:
    """The all-gathered bytes back into each rank's values, in rank order."""
    if world_size < 1 or len(raw) % (8 * world_size):
        raise ValueError(f"{len(raw)} bytes do not split into {world_size} ranks of float64 values")
    width = len(raw) // 8 // world_size
    return [list(struct.unpack_from(f"<{width}d", raw, rank * width * 8)) for rank in range(world_size)]


_OBJECT_BYTES = 1024  # gather_objects: each rank's JSON, padded to this length


class MlxBackend:  # pragma: no cover - needs MLX on Apple silicon
    """A rank of an mx.distributed group. Every MLX call is in this class."""

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

    def _array(self, values: Any, dtype: str) -> Any:
        return self.mx.array(values).astype(getattr(self.mx, MLX_DTYPES[dtype]))

    def _bits(self, arr: Any, dtype: str) -> Bits:
        """An MLX array's elements as unsigned bit patterns (numpy has no bfloat16 to convert to)."""
        unsigned = getattr(self.mx, f"uint{8 * DTYPE_SIZES[dtype]}")
        bits: Bits = np.array(self.mx.view(arr, unsigned))
        return bits

    def _all_gather_bytes(self, payload: bytes) -> bytes:
        """Every rank's `payload` (all the same length), concatenated in rank order."""
        mx = self.mx
        gathered = mx.distributed.all_gather(
            mx.array(np.frombuffer(payload, dtype=np.uint8)), group=self.group
        )
        mx.eval(gathered)
        return bytes(np.array(gathered, dtype=np.uint8))

    def unsupported_placements(self, collective: str) -> dict[str, str]:
        return {"in_place": "mx.distributed returns a new array: MLX has no in-place collective"}

    def prepare(
        self, collective: str, dtype: str, send_elems: int, recv_elems: int, in_place: bool
    ) -> PreparedOp:
        if in_place:
            raise ValueError(self.unsupported_placements(collective)["in_place"])
        mx = self.mx
        dist = mx.distributed
        n, r = self.world_size, self.rank
        if collective == "all_reduce":
            fn = dist.all_sum
        elif collective == "all_gather":
            fn = dist.all_gather
        elif collective == "reduce_scatter" and hasattr(dist, "sum_scatter"):
            fn = dist.sum_scatter
        else:
            raise ValueError(f"mx.distributed cannot run {collective}")
        state: dict[str, Any] = {"x": self._array(rank_input(dtype, r, n, send_elems), dtype), "out": None}
        evaluate = mx.eval
        group = self.group

        def run() -> None:
            out = fn(state["x"], group=group)
            evaluate(out)
            state["out"] = out

        def fill(fault: bool) -> None:
            x = self._array(rank_input(dtype, r, n, send_elems, fault), dtype)
            evaluate(x)
            state["x"] = x

        def wrong() -> int | None:
            return wrong_elements(
                self._bits(state["out"], dtype), collective, dtype, r, n, send_elems, recv_elems
            )

        return PreparedOp(run, fill, wrong)

    def barrier(self) -> None:
        self.mx.eval(self.mx.distributed.all_sum(self.mx.zeros(1), group=self.group))

    def synchronize(self) -> None:
        self.mx.synchronize()

    def sum_values(self, values: Sequence[float]) -> list[float]:
        raw = self._all_gather_bytes(pack_floats(values))
        return sum_over_ranks(unpack_rank_floats(raw, self.world_size))

    def gather_objects(self, obj: Any) -> list[Any]:
        raw = self._all_gather_bytes(json.dumps(obj).encode()[:_OBJECT_BYTES].ljust(_OBJECT_BYTES, b" "))
        chunks = [raw[i * _OBJECT_BYTES : (i + 1) * _OBJECT_BYTES] for i in range(self.world_size)]
        return [json.loads(chunk.decode().strip() or "null") for chunk in chunks]

    def close(self) -> None:
        pass


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - runs under mlx.launch
    import argparse

    from .worker import add_sweep_arguments, run_sweeps, sweep_configs

    p = argparse.ArgumentParser(prog="mlx collectives worker")
    add_sweep_arguments(p)
    p.add_argument("--mlx-backend", default=os.environ.get("BENCH_MLX_BACKEND", "ring"), choices=MLX_BACKENDS)
    p.add_argument("--emit-json", action="store_true")
    args = p.parse_args(argv)
    return run_sweeps(MlxBackend(args.mlx_backend), sweep_configs(args), emit_json=args.emit_json)


if __name__ == "__main__":  # pragma: no cover
    if __package__ in (None, ""):
        # started as a script by mlx.launch: make the package importable and rerun as a module
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from bench_runner.collectives.mlx_backend import main as _main

        sys.exit(_main())
    sys.exit(main())
