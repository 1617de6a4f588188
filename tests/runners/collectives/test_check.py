"""The correctness check every backend shares: expected values, bit patterns, per-dtype tolerance,
and the float64 sums over ranks (MLX's reduction, run here on recorded bytes)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from bench_runner.collectives.backends import (
    FLOATING,
    count_wrong,
    expected_output,
    pattern,
    pattern_modulus,
    sum_over_ranks,
    tolerance_ulps,
    value_bits,
)
from bench_runner.collectives.core import DTYPE_SIZES
from bench_runner.collectives.mlx_backend import pack_floats, unpack_rank_floats

ALL_DTYPES = sorted(DTYPE_SIZES)


def test_tolerance_per_dtype_as_nccl_tests() -> None:
    # nccl-tests' verifiable check: exact bits for every type and operation, except an average
    # of floating-point values (2 ULPs: the pre-multiply may round)
    for dtype in ALL_DTYPES:
        assert tolerance_ulps(dtype, "sum") == 0
        assert tolerance_ulps(dtype, "none") == 0
        assert tolerance_ulps(dtype, "avg") == (2 if dtype in FLOATING else 0)
    assert {"half", "bfloat16", "float", "double"} == FLOATING


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_one_ulp_off_is_wrong_unless_tolerated(dtype: str) -> None:
    values = pattern(1, 0, 100, pattern_modulus(dtype, 4)) + 3
    expected = value_bits(values, dtype)
    assert expected.itemsize == DTYPE_SIZES[dtype]
    got = expected.copy()
    assert count_wrong(got, expected) == 0
    got[[3, 50, 99]] += 1  # the next representable value: one unit in the last place
    assert count_wrong(got, expected) == 3
    assert count_wrong(got, expected, tolerance=1) == 0
    got[7] -= 3
    assert count_wrong(got, expected, tolerance=2) == 1
    assert count_wrong(got, expected, tolerance_ulps(dtype, "avg")) == (1 if dtype in FLOATING else 4)


def test_bits_not_values_are_compared() -> None:
    expected = value_bits(np.zeros(3, dtype=np.int64), "float")
    negative_zero = np.array([-0.0, 0.0, 0.0], dtype=np.float32).view(np.uint32)
    assert count_wrong(negative_zero, expected) == 1  # -0.0 is not 0.0 bit for bit
    nan = np.array([math.nan] * 2, dtype=np.float32).view(np.uint32)
    assert count_wrong(nan, nan.copy()) == 0  # the same NaN is the same result
    with pytest.raises(ValueError):
        count_wrong(negative_zero, value_bits(np.zeros(3, dtype=np.int64), "double"))


def test_value_bits_match_the_types_encoding() -> None:
    values = np.arange(-20, 300, dtype=np.int64)
    assert (value_bits(values, "half") == values.astype(np.float16).view(np.uint16)).all()
    assert (value_bits(values, "double") == values.astype(np.float64).view(np.uint64)).all()
    assert (value_bits(values, "int8") == values.astype(np.int8).view(np.uint8)).all()
    bf16 = value_bits(np.array([1, 3, 256, 257, 259, -2], dtype=np.int64), "bfloat16")
    # 1.0 = 0x3f80, 3.0 = 0x4040, 256 = 0x4380; 257 rounds to even (256), 259 up to 260
    assert [hex(b) for b in bf16] == ["0x3f80", "0x4040", "0x4380", "0x4380", "0x4382", "0xc000"]


def test_bfloat16_bits_equal_torch() -> None:
    torch = pytest.importorskip("torch")
    values = np.arange(-600, 600, dtype=np.int64)
    ours = value_bits(values, "bfloat16")
    theirs = torch.from_numpy(values).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    assert (ours == theirs).all()


def test_expected_output_per_collective() -> None:
    mod = pattern_modulus("float", 3)
    p = [pattern(q, 0, 12, mod) for q in range(3)]
    assert (expected_output("all_reduce", 1, 3, 12, 12, mod) == p[0] + p[1] + p[2]).all()
    assert (expected_output("all_gather", 2, 3, 4, 12, mod) == np.concatenate([x[:4] for x in p])).all()
    assert (expected_output("reduce_scatter", 1, 3, 12, 4, mod) == (p[0] + p[1] + p[2])[4:8]).all()
    alltoall = expected_output("alltoall", 2, 3, 12, 12, mod)
    assert (alltoall == np.concatenate([x[8:12] for x in p])).all()
    assert (expected_output("broadcast", 2, 3, 12, 12, mod) == p[0]).all()
    # sums over many ranks (and one fault) stay exact in the narrowest types
    for dtype, nranks in (("bfloat16", 80), ("half", 80), ("int8", 100)):
        total = expected_output("all_reduce", 0, nranks, 64, 64, pattern_modulus(dtype, nranks))
        assert int(total.max()) + 1 <= {"bfloat16": 256, "half": 2048, "int8": 127}[dtype]


def test_sums_over_ranks_are_float64() -> None:
    # recorded per-rank [time per op (s), wrong elements, failed checks] of three ranks
    ranks = [[0.0012345678901234, 16_777_217.0, 1.0], [0.0012345678901236, 0.0, 0.0], [1e-9, 2.0, 1.0]]
    raw = b"".join(pack_floats(values) for values in ranks)  # what MLX's all_gather returns
    assert len(raw) == 3 * 3 * 8
    assert unpack_rank_floats(raw, 3) == ranks
    total = sum_over_ranks(unpack_rank_floats(raw, 3))
    assert total == [0.0012345678901234 + 0.0012345678901236 + 1e-9, 16_777_219.0, 2.0]
    # what an all_sum in float32 gives instead: the count and the time lose their last digits
    f32 = np.sum(np.array(ranks, dtype=np.float32), axis=0)
    assert int(f32[1]) != 16_777_219 and float(f32[0]) != total[0]
    with pytest.raises(ValueError):
        unpack_rank_floats(raw[:-8], 3)
    with pytest.raises(ValueError):
        sum_over_ranks([[1.0, 2.0], [1.0]])
