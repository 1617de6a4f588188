"""The distribution functions behind the detector's p-values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench_server.analysis.stats import (
    max_split_pvalue,
    mosum_critical_value,
    mosum_pvalue,
    normal_isf,
    normal_sf,
    overshoot,
    student_t_isf,
    student_t_sf,
)


@pytest.mark.parametrize(
    ("t", "df", "expected"),  # scipy.stats.t.sf
    [(2.0, 3, 0.06966298427942152), (-1.5, 7, 0.911350756505015), (0.3, 30, 0.3831230526421764),
     (5.0, 2, 0.018874775675311862), (0.0, 4, 0.5)],
)  # fmt: skip
def test_student_t_tail_matches_scipy(t: float, df: float, expected: float) -> None:
    assert student_t_sf(t, df) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_quantiles_invert_the_tails() -> None:
    assert student_t_isf(0.025, 4) == pytest.approx(2.7764451051977943, rel=1e-8)
    assert normal_isf(0.001) == pytest.approx(3.090232306167813, rel=1e-8)
    for p in (0.3, 0.01, 1e-6):
        assert normal_sf(normal_isf(p)) == pytest.approx(p, rel=1e-6)
        assert student_t_sf(student_t_isf(p, 9), 9) == pytest.approx(p, rel=1e-6)
    with pytest.raises(ValueError):
        normal_isf(1.0)


def test_overshoot_is_one_at_zero_and_decays_like_exp_minus_0_583_x() -> None:
    assert overshoot(0.0) == 1.0
    for x in (0.2, 0.5, 1.0):
        assert overshoot(x) == pytest.approx(math.exp(-0.583 * x), rel=0.03)


def test_scan_pvalues_fall_with_z_and_stay_probabilities() -> None:
    zs = np.linspace(0.0, 8.0, 41)
    for values in ([max_split_pvalue(z, 200, 5) for z in zs], [mosum_pvalue(z, 1000, 20) for z in zs]):
        assert all(0.0 <= v <= 1.0 for v in values)
        assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    # A longer series offers more places to find a split by chance.
    assert max_split_pvalue(4.0, 2000, 5) > max_split_pvalue(4.0, 50, 5)
    assert mosum_pvalue(mosum_critical_value(1000, 20, 0.05), 1000, 20) == pytest.approx(0.05, rel=1e-6)


def test_the_best_split_pvalue_holds_its_level_under_no_change() -> None:
    """Standardised rank CUSUM of exchangeable data: P(p <= alpha) must not exceed alpha by much."""
    rng = np.random.default_rng(0)
    n, trials, min_size = 100, 2000, 5
    ranks = np.argsort(rng.random((trials, n)), axis=1).argsort(axis=1) + 1.0
    centred = ranks - (n + 1) / 2.0
    k = np.arange(min_size, n - min_size + 1)
    sums = np.cumsum(centred, axis=1)[:, k - 1]
    variance = k * (n - k) / (n * (n - 1.0)) * (centred**2).sum(axis=1, keepdims=True)
    z_max = np.abs(sums / np.sqrt(variance)).max(axis=1)
    p = np.array([max_split_pvalue(z, n, min_size) for z in z_max])
    for alpha in (0.01, 0.05, 0.2):
        assert (p <= alpha).mean() <= alpha * 1.2 + 0.003
    assert (p <= 0.05).mean() >= 0.02  # and is not so conservative that it loses its power
