"""`torch.distributed` backend: gloo on the CPU, NCCL on CUDA (same code, device "cuda").

Hardware-specific calls are isolated in `_device_for` and `synchronize`; everything else is the
same for gloo and NCCL.
"""

from __future__ import annotations

import functools
import os
import socket
from datetime import timedelta
from typing import Any

from .backends import FAULT_STRIDE, PreparedOp, pattern_modulus

TORCH_DTYPES = {
    "int8": "int8",
    "uint8": "uint8",
    "int32": "int32",
    "uint32": "uint32",
    "int64": "int64",
    "uint64": "uint64",
    "half": "float16",
    "float": "float32",
    "double": "float64",
    "bfloat16": "bfloat16",
}


def _device_for(backend: str, local_rank: int) -> str:
    """The device a rank uses: cuda:<local rank> for NCCL, cpu otherwise."""
    if backend == "nccl":
        import torch

        torch.cuda.set_device(local_rank)
        return f"cuda:{local_rank}"
    return "cpu"


def _device_description(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return str(torch.cuda.get_device_name(torch.device(device)))
    return f"CPU ({os.cpu_count()} cores)"


class TorchDistBackend:
    """A rank of a torch.distributed process group (env:// rendezvous: MASTER_ADDR/PORT, RANK, WORLD_SIZE)."""

    def __init__(
        self,
        backend: str = "gloo",
        *,
        rank: int | None = None,
        world_size: int | None = None,
        local_rank: int | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        import torch
        import torch.distributed as dist

        self.torch = torch
        self.dist = dist
        self.name = backend
        rank = int(os.environ["RANK"]) if rank is None else rank
        world_size = int(os.environ["WORLD_SIZE"]) if world_size is None else world_size
        local_rank = int(os.environ.get("LOCAL_RANK", rank)) if local_rank is None else local_rank
        self.device = _device_for(backend, local_rank)
        self.local_rank = local_rank
        kwargs: dict[str, Any] = {}
        if backend == "nccl":
            kwargs["device_id"] = torch.device(self.device)
        if not dist.is_initialized():
            dist.init_process_group(
                backend=backend,
                init_method="env://",
                rank=rank,
                world_size=world_size,
                timeout=timedelta(seconds=timeout_s),
                **kwargs,
            )
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.device_info = _device_description(self.device)
        self.hostname = socket.gethostname()

    # -- helpers ---------------------------------------------------------------------------

    def _tdtype(self, dtype: str) -> Any:
        return getattr(self.torch, TORCH_DTYPES[dtype])

    def _pattern(self, rank: int, start: int, n: int, mod: int) -> Any:
        """Pattern values for elements start..start+n of `rank`, as int64 on the CPU."""
        idx = self.torch.arange(start, start + n, dtype=self.torch.int64)
        return (idx * 7 + rank * 3 + 1) % mod

    def _count_mismatch(self, out: Any, expected_int64: Any, dtype: str) -> int:
        got = out.detach().to("cpu")
        expected = expected_int64.to(self._tdtype(dtype))
        return int((got != expected).sum().item())

    # -- the interface ---------------------------------------------------------------------

    def prepare(
        self, collective: str, dtype: str, send_elems: int, recv_elems: int, in_place: bool
    ) -> PreparedOp:
        torch, dist = self.torch, self.dist
        tdtype = self._tdtype(dtype)
        n, r = self.world_size, self.rank
        mod = pattern_modulus(dtype, n)
        dev = self.device

        def fill_tensor(t: Any, values: Any) -> None:
            t.copy_(values.to(tdtype))

        def corrupt(t: Any, fault: bool) -> None:
            if fault:
                view = t[::FAULT_STRIDE]
                view.add_(1)

        if collective == "all_reduce":
            recv = torch.zeros(recv_elems, dtype=tdtype, device=dev)
            send = recv if in_place else torch.zeros(send_elems, dtype=tdtype, device=dev)
            run = functools.partial(dist.all_reduce, recv) if in_place else _all_reduce_oop(dist, send, recv)

            def fill(fault: bool) -> None:
                fill_tensor(send, self._pattern(r, 0, send_elems, mod))
                corrupt(send, fault)
                if not in_place:
                    recv.zero_()

            def wrong() -> int | None:
                exp = sum(self._pattern(q, 0, recv_elems, mod) for q in range(n))
                return self._count_mismatch(recv, exp, dtype)

            return PreparedOp(run, fill, wrong)

        if collective == "all_gather":
            per = send_elems
            recv = torch.zeros(recv_elems, dtype=tdtype, device=dev)
            send = recv[r * per : (r + 1) * per] if in_place else torch.zeros(per, dtype=tdtype, device=dev)
            run = functools.partial(dist.all_gather_into_tensor, recv, send)

            def fill(fault: bool) -> None:
                if not in_place:
                    recv.zero_()
                fill_tensor(send, self._pattern(r, 0, per, mod))
                corrupt(send, fault)

            def wrong() -> int | None:
                exp = torch.cat([self._pattern(q, 0, per, mod) for q in range(n)])
                return self._count_mismatch(recv, exp, dtype)

            return PreparedOp(run, fill, wrong)

        if collective == "reduce_scatter":
            per = recv_elems
            send = torch.zeros(send_elems, dtype=tdtype, device=dev)
            recv = send[r * per : (r + 1) * per] if in_place else torch.zeros(per, dtype=tdtype, device=dev)
            run = functools.partial(dist.reduce_scatter_tensor, recv, send)

            def fill(fault: bool) -> None:
                fill_tensor(send, self._pattern(r, 0, send_elems, mod))
                corrupt(send, fault)
                if not in_place:
                    recv.zero_()

            def wrong() -> int | None:
                exp = sum(self._pattern(q, r * per, per, mod) for q in range(n))
                return self._count_mismatch(recv, exp, dtype)

            return PreparedOp(run, fill, wrong)

        if collective == "alltoall":
            per = send_elems // n
            send = torch.zeros(send_elems, dtype=tdtype, device=dev)
            recv = send if in_place else torch.zeros(recv_elems, dtype=tdtype, device=dev)
            run = functools.partial(dist.all_to_all_single, recv, send)

            def fill(fault: bool) -> None:
                fill_tensor(send, self._pattern(r, 0, send_elems, mod))
                corrupt(send, fault)
                if not in_place:
                    recv.zero_()

            def wrong() -> int | None:
                if in_place:
                    return None  # as nccl-tests: in-place alltoall is not validated (N/A)
                exp = torch.cat([self._pattern(q, r * per, per, mod) for q in range(n)])
                return self._count_mismatch(recv, exp, dtype)

            return PreparedOp(run, fill, wrong)

        if collective == "broadcast":
            root = 0
            buf = torch.zeros(recv_elems, dtype=tdtype, device=dev)
            send = buf if in_place else torch.zeros(send_elems, dtype=tdtype, device=dev)
            if in_place:
                run = functools.partial(dist.broadcast, buf, root)
            else:
                run = _broadcast_oop(dist, send, buf, root, r)

            def fill(fault: bool) -> None:
                # Non-root ranks start from their own pattern, so a missing broadcast is visible.
                fill_tensor(send, self._pattern(r, 0, send_elems, mod))
                corrupt(send, fault)
                if not in_place:
                    buf.zero_()

            def wrong() -> int | None:
                return self._count_mismatch(buf, self._pattern(root, 0, recv_elems, mod), dtype)

            return PreparedOp(run, fill, wrong)

        raise ValueError(f"unsupported collective {collective!r}")

    def barrier(self) -> None:
        self.dist.barrier()

    def synchronize(self) -> None:
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize()

    def sum_scalar(self, value: float) -> float:
        t = self.torch.tensor([value], dtype=self.torch.float64, device=self.device)
        self.dist.all_reduce(t)
        return float(t.item())

    def gather_objects(self, obj: Any) -> list[Any]:
        out: list[Any] = [None] * self.world_size
        self.dist.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        if self.dist.is_initialized():
            self.dist.destroy_process_group()


def _all_reduce_oop(dist: Any, send: Any, recv: Any) -> Any:
    """Out-of-place all-reduce: torch reduces in place, so the send buffer is copied into recv first
    (the copy is part of the operation, as the data movement NCCL's out-of-place variant does)."""
    copy = recv.copy_
    op = dist.all_reduce

    def run() -> None:
        copy(send)
        op(recv)

    return run


def _broadcast_oop(dist: Any, send: Any, recv: Any, root: int, rank: int) -> Any:
    """Out-of-place broadcast: the root copies its send buffer into the receive buffer first."""
    op = dist.broadcast
    if rank == root:
        copy = recv.copy_

        def run_root() -> None:
            copy(send)
            op(recv, root)

        return run_root
    return functools.partial(op, recv, root)
