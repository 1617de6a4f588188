"""The small interface the collectives harness drives, and the data check every backend shares.

A backend owns a process group and hands the harness `PreparedOp`s: buffers already allocated,
a zero-argument callable that runs the collective once (the only thing inside the timed loop),
a `fill` that writes predictable values (optionally corrupting this rank's contribution) and a
`count_wrong` that checks the output against the values every rank can predict.

Pattern: rank r, element i holds (7 i + 3 r + 1) mod (m + 1), small integers whose sums over all
ranks are exact in every data type (m shrinks for narrow types and large worlds), so a correct
collective gives exactly the expected bits whatever order it adds in.

The check follows nccl-tests (>= 2.13, `verifiable/verifiable.cu`), whose inputs are likewise
built so that the result is exact: an element is wrong when its bit pattern, read as an
unsigned integer, is more than the tolerance away from the expected one. The tolerance is 0
ULPs for every type and operation except an average of floating-point values (2 ULPs, since
the pre-multiply may round); see `tolerance_ulps`. Comparing bits also means a NaN equals a
NaN of the same bits and -0.0 differs from 0.0, as in nccl-tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from .core import COLLECTIVES, DTYPE_SIZES

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
FLOATING = frozenset({"half", "bfloat16", "float", "double"})
PLACEMENTS = ("out_of_place", "in_place")

Int64s = npt.NDArray[np.int64]
Bits = npt.NDArray[np.unsignedinteger[Any]]

UNSIGNED_OF_WIDTH = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_NUMPY_VALUE = {
    "int8": np.int8,
    "uint8": np.uint8,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "uint64": np.uint64,
    "half": np.float16,
    "float": np.float32,
    "double": np.float64,
}


def pattern_modulus(dtype: str, nranks: int) -> int:
    """m + 1 in the docstring's pattern: sums over nranks (plus one fault) stay exact."""
    limit = _EXACT_LIMIT[dtype]
    m = max(1, min(10, (limit - 1) // max(1, nranks)))
    return m + 1


def pattern(rank: int, start: int, n: int, mod: int) -> Int64s:
    """Pattern values of `rank` for elements start..start+n."""
    idx = np.arange(start, start + n, dtype=np.int64)
    return (idx * 7 + rank * 3 + 1) % mod


def rank_input(dtype: str, rank: int, nranks: int, send_elems: int, fault: bool = False) -> Int64s:
    """What `rank` puts in its input buffer: the pattern, every FAULT_STRIDE-th element +1 if `fault`."""
    values = pattern(rank, 0, send_elems, pattern_modulus(dtype, nranks))
    if fault:
        values[::FAULT_STRIDE] += 1
    return values


def _sum_of_patterns(nranks: int, start: int, n: int, mod: int) -> Int64s:
    total = np.zeros(n, dtype=np.int64)
    for q in range(nranks):
        total += pattern(q, start, n, mod)
    return total


def expected_output(
    collective: str, rank: int, nranks: int, send_elems: int, recv_elems: int, mod: int, root: int = 0
) -> Int64s:
    """What `rank`'s output buffer holds after a correct collective on the pattern."""
    if collective == "all_reduce":
        return _sum_of_patterns(nranks, 0, recv_elems, mod)
    if collective == "all_gather":
        return np.concatenate([pattern(q, 0, send_elems, mod) for q in range(nranks)])
    if collective == "reduce_scatter":
        return _sum_of_patterns(nranks, rank * recv_elems, recv_elems, mod)
    if collective == "alltoall":
        per = send_elems // nranks
        return np.concatenate([pattern(q, rank * per, per, mod) for q in range(nranks)])
    if collective == "broadcast":
        return pattern(root, 0, recv_elems, mod)
    raise ValueError(f"unsupported collective {collective!r}")


def _bfloat16_bits(values: Int64s) -> Bits:
    """bfloat16 bit patterns (numpy has no bfloat16): float32 rounded to nearest even, high half."""
    bits = values.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def value_bits(values: Int64s, dtype: str) -> Bits:
    """The bit patterns `values` have once stored as `dtype` (unsigned, one per element)."""
    if dtype == "bfloat16":
        return _bfloat16_bits(values)
    stored = values.astype(_NUMPY_VALUE[dtype])
    return stored.view(UNSIGNED_OF_WIDTH[DTYPE_SIZES[dtype]])


def tolerance_ulps(dtype: str, redop: str = "sum") -> int:
    """How many units in the last place an element may be off (nccl-tests' rule)."""
    return 2 if dtype in FLOATING and redop == "avg" else 0


def count_wrong(got: Bits, expected: Bits, tolerance: int = 0) -> int:
    """Elements whose bit patterns are more than `tolerance` apart."""
    if got.shape != expected.shape or got.dtype != expected.dtype:
        raise ValueError(f"result {got.dtype}{got.shape} vs expected {expected.dtype}{expected.shape}")
    distance = np.where(got > expected, got - expected, expected - got)
    return int(np.count_nonzero(distance > tolerance))


def wrong_elements(
    got: Bits, collective: str, dtype: str, rank: int, nranks: int, send_elems: int, recv_elems: int
) -> int:
    """The check of one rank's output buffer (as bits) after `collective` ran on the pattern."""
    mod = pattern_modulus(dtype, nranks)
    expected = value_bits(expected_output(collective, rank, nranks, send_elems, recv_elems, mod), dtype)
    return count_wrong(got, expected, tolerance_ulps(dtype, COLLECTIVES[collective].redop))


def sum_over_ranks(per_rank: Sequence[Sequence[float]]) -> list[float]:
    """Element-wise sums over ranks, in rank order, in float64 (every rank gets the same bits)."""
    width = len(per_rank[0])
    if any(len(values) != width for values in per_rank):
        raise ValueError("every rank must contribute the same number of values")
    return [float(sum(float(values[i]) for values in per_rank)) for i in range(width)]


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

    def unsupported_placements(self, collective: str) -> dict[str, str]:
        """placement -> why this backend has no true form of it (the harness skips those)."""
        ...

    def prepare(
        self, collective: str, dtype: str, send_elems: int, recv_elems: int, in_place: bool
    ) -> PreparedOp: ...

    def barrier(self) -> None: ...

    def synchronize(self) -> None: ...

    def sum_values(self, values: Sequence[float]) -> list[float]:
        """Element-wise sums over all ranks in float64; every rank gets the same result."""
        ...

    def gather_objects(self, obj: Any) -> list[Any]: ...

    def close(self) -> None: ...
