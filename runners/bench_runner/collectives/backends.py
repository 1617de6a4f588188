"""The small interface the collectives harness drives, and the data pattern every backend uses.

A backend owns a process group and hands the harness `PreparedOp`s: buffers already allocated,
a zero-argument callable that runs the collective once (the only thing inside the timed loop),
a `fill` that writes predictable values (optionally corrupting this rank's contribution) and a
`count_wrong` that checks the output against the values every rank can predict.

Pattern: rank r, element i holds (7 i + 3 r + 1) mod (m + 1), small integers whose sums over all
ranks are exact in every data type (m shrinks for narrow types and large worlds).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .core import DTYPE_SIZES

# Largest integer each type represents exactly (and without overflow for sums).
_EXACT_LIMIT = {
    "int8": 127,
    "uint8": 255,
    "half": 2048,
    "bfloat16": 256,
    "float": 1 << 24,
    "double": 1 << 53,
    "int32": (1 << 31) - 1,
    "uint32": (1 << 32) - 1,
    "int64": (1 << 62),
    "uint64": (1 << 62),
}
FAULT_STRIDE = 5  # the fault injector corrupts every 5th element of one rank's contribution


def pattern_modulus(dtype: str, nranks: int) -> int:
    """m + 1 in the docstring's pattern: sums over nranks (plus one fault) stay exact."""
    limit = _EXACT_LIMIT[dtype]
    m = max(1, min(10, (limit - 1) // max(1, nranks)))
    return m + 1


@dataclass
class PreparedOp:
    """One collective at one size and placement, ready to run."""

    run: Callable[[], Any]
    fill: Callable[[bool], None]  # fill(fault) writes the pattern (fault: corrupt this rank's input)
    count_wrong: Callable[[], int | None]  # None when the result cannot be checked (N/A)


class CollectiveBackend(Protocol):
    name: str
    rank: int
    world_size: int
    device_info: str

    def prepare(
        self, collective: str, dtype: str, send_elems: int, recv_elems: int, in_place: bool
    ) -> PreparedOp: ...

    def barrier(self) -> None: ...

    def synchronize(self) -> None: ...

    def sum_scalar(self, value: float) -> float: ...

    def gather_objects(self, obj: Any) -> list[Any]: ...

    def close(self) -> None: ...


def check_dtype(dtype: str) -> None:
    if dtype not in DTYPE_SIZES:
        raise ValueError(f"unknown dtype {dtype!r}")
