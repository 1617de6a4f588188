"""The few distribution functions the detector needs, in plain Python.

The service core stays free of SciPy: the normal tail comes from `math.erfc`, Student's t from
the regularised incomplete beta function (a continued fraction), and the two scan-statistic
corrections from the Gaussian-process tail approximation (Pickands; Siegmund for the
standardised Brownian bridge). Every function is deterministic and cheap enough to call per
change point.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

SQRT2 = math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / SQRT2)


def normal_pdf(z: float) -> float:
    return INV_SQRT_2PI * math.exp(-0.5 * z * z)


def _invert_decreasing(f: Callable[[float], float], target: float, lo: float, hi: float) -> float:
    """The x in [lo, hi] with f(x) == target, for f decreasing; bisection to 1e-10."""
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if f(mid) > target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-10:
            break
    return 0.5 * (lo + hi)


@lru_cache(maxsize=256)
def normal_isf(p: float) -> float:
    """The z with P(Z > z) == p (0 < p < 1)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"probability must be in (0, 1), got {p}")
    return _invert_decreasing(normal_sf, p, -40.0, 40.0)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function, modified Lentz's method."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for num in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-14:
            break
    return h


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularised incomplete beta function."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(log_front)
    # The continued fraction converges fast only on this side of the mean; use symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def student_t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with `df` degrees of freedom."""
    if df <= 0:
        raise ValueError("degrees of freedom must be positive")
    tail = 0.5 * regularized_beta(0.5 * df, 0.5, df / (df + t * t))
    return tail if t > 0 else 1.0 - tail


@lru_cache(maxsize=256)
def student_t_isf(p: float, df: float) -> float:
    """The t with P(T > t) == p (0 < p < 1)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"probability must be in (0, 1), got {p}")
    return _invert_decreasing(lambda t: student_t_sf(t, df), p, -1e4, 1e4)


def max_split_pvalue(z: float, n: int, min_size: int) -> float:
    """P(max |Z_k| >= z) over the split positions of a standardised two-sample statistic.

    Z_k compares the first k of n exchangeable items with the rest (CUSUM / rank-sum), for
    min_size <= k <= n - min_size. In the limit Z is the standardised Brownian bridge, an
    Ornstein-Uhlenbeck process in log(t / (1 - t)) with r(s) = exp(-|s| / 2); its two-sided
    exceedance probability over that range is about span * z * phi(z) + 2 (1 - Phi(z))
    (Siegmund's approximation). The discrete maximum is smaller than the continuous one, so
    this errs on the conservative side; Bonferroni over the positions caps it for short ranges.
    """
    positions = n - 2 * min_size + 1
    single = 2.0 * normal_sf(z)
    if positions <= 1:
        return min(1.0, single)
    t0 = min_size / n
    span = 2.0 * math.log((1.0 - t0) / t0)
    continuous = span * z * normal_pdf(z) + single
    return min(1.0, continuous, positions * single)


def mosum_pvalue(z: float, positions: int, bandwidth: int) -> float:
    """P(max |D_t| >= z) over `positions` of a standardised moving-sum difference statistic.

    D_t compares the `bandwidth` items after t with the `bandwidth` items before it; its
    correlation at lag d is 1 - 3d / (2 bandwidth), so by Pickands' approximation the
    two-sided exceedance probability is about 3 * positions * z * phi(z) / bandwidth, capped
    by Bonferroni.
    """
    single = 2.0 * normal_sf(z)
    continuous = 3.0 * positions * z * normal_pdf(z) / bandwidth + single
    return min(1.0, continuous, max(1, positions) * single)


@lru_cache(maxsize=1024)
def mosum_critical_value(positions: int, bandwidth: int, alpha: float) -> float:
    """The z at which `mosum_pvalue` falls to alpha."""
    return _invert_decreasing(lambda z: mosum_pvalue(z, positions, bandwidth), alpha, 0.0, 40.0)
