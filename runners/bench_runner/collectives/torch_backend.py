"""`torch.distributed` backend: gloo on the CPU, NCCL on CUDA (same code, device "cuda").

Hardware-specific calls are isolated in `_device_for` and `synchronize`; everything else is the
same for gloo and NCCL. all_reduce and broadcast are measured in place only (torch has no
out-of-place form of them); the others in both placements.
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from .backends import (
    UNSIGNED_OF_WIDTH,
    Bits,
    PreparedOp,
    rank_input,
    wrong_elements,
)
from .core import COLLECTIVES

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
_SAME_WIDTH_INT = {1: "uint8", 2: "int16", 4: "int32", 8: "int64"}
BROADCAST_ROOT = 0  # the root the pattern check expects (backends.expected_output)
# torch.distributed reduces and broadcasts in place only: an out-of-place form would have to copy
# the input into the output first, and a copy is not part of the collective. These are measured
# in place only, and the run says so.
_IN_PLACE_ONLY = {
    "all_reduce": "torch.distributed.all_reduce has no out-of-place form",
    "broadcast": "torch.distributed.broadcast has no out-of-place form",
}


def _newest(dist: Any, name: str, older: str) -> Any:
    """Recent torch deprecates the `*_tensor` names for `*_single` (same arguments): the newer one."""
    return getattr(dist, name, None) or getattr(dist, older)


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

    def _bits(self, tensor: Any) -> Bits:
        """The tensor's elements as unsigned bit patterns, on the CPU."""
        width = tensor.element_size()
        raw = tensor.detach().to("cpu").contiguous().view(getattr(self.torch, _SAME_WIDTH_INT[width]))
        bits: Bits = raw.numpy().view(UNSIGNED_OF_WIDTH[width])
        return bits

    # -- the interface ---------------------------------------------------------------------

    def unsupported_placements(self, collective: str) -> dict[str, str]:
        why = _IN_PLACE_ONLY.get(collective)
        return {"out_of_place": why} if why else {}

    def prepare(
        self, collective: str, dtype: str, send_elems: int, recv_elems: int, in_place: bool
    ) -> PreparedOp:
        if not in_place and collective in _IN_PLACE_ONLY:
            raise ValueError(f"{self.name}: {_IN_PLACE_ONLY[collective]}")
        torch, dist = self.torch, self.dist
        n, r = self.world_size, self.rank
        tdtype = self._tdtype(dtype)

        def new(elems: int) -> Any:
            return torch.zeros(elems, dtype=tdtype, device=self.device)

        # Every `run` is the bare torch.distributed call on buffers made here: nothing else is timed.
        if collective == "all_reduce":
            send = recv = new(recv_elems)
            run = functools.partial(dist.all_reduce, recv)
        elif collective == "broadcast":
            # every rank starts from its own pattern, so a broadcast that did not happen is visible
            send = recv = new(recv_elems)
            run = functools.partial(dist.broadcast, recv, BROADCAST_ROOT)
        elif collective == "all_gather":
            recv = new(recv_elems)
            send = recv[r * send_elems : (r + 1) * send_elems] if in_place else new(send_elems)
            run = functools.partial(_newest(dist, "all_gather_single", "all_gather_into_tensor"), recv, send)
        elif collective == "reduce_scatter":
            send = new(send_elems)
            recv = send[r * recv_elems : (r + 1) * recv_elems] if in_place else new(recv_elems)
            run = functools.partial(
                _newest(dist, "reduce_scatter_single", "reduce_scatter_tensor"), recv, send
            )
        elif collective == "alltoall":
            send = new(send_elems)
            recv = send if in_place else new(recv_elems)
            run = functools.partial(dist.all_to_all_single, recv, send)
        else:
            raise ValueError(f"unsupported collective {collective!r}")

        def fill(fault: bool) -> None:
            # output first: in-place the input is (a slice of) it and is written next
            recv.zero_()
            send.copy_(torch.from_numpy(rank_input(dtype, r, n, send_elems, fault)).to(tdtype))

        checked = not in_place or COLLECTIVES[collective].in_place_checked

        def wrong() -> int | None:
            if not checked:
                return None  # as nccl-tests: in-place alltoall is not validated (N/A)
            return wrong_elements(self._bits(recv), collective, dtype, r, n, send_elems, recv_elems)

        return PreparedOp(run, fill, wrong)

    def barrier(self) -> None:
        self.dist.barrier()

    def synchronize(self) -> None:
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize()

    def sum_values(self, values: Sequence[float]) -> list[float]:
        t = self.torch.tensor(list(values), dtype=self.torch.float64, device=self.device)
        self.dist.all_reduce(t)
        return [float(v) for v in t.tolist()]

    def gather_objects(self, obj: Any) -> list[Any]:
        out: list[Any] = [None] * self.world_size
        self.dist.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        if self.dist.is_initialized():
            self.dist.destroy_process_group()
