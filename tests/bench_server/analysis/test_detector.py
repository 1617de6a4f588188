"""The change-point detector and the fast check, on seeded synthetic series."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bench_server.analysis import (
    ChangeKind,
    DetectorSettings,
    Direction,
    VerdictStatus,
    check_new_point,
    detect_change_points,
    restores_level,
    update_change_points,
)

LOWER = Direction.LOWER_IS_BETTER  # a latency: TTFT
HIGHER = Direction.HIGHER_IS_BETTER  # a throughput: tokens/s


def series(levels: list[tuple[int, float]], cv: float, seed: int, per_commit: int = 1) -> np.ndarray:
    """Commits x samples: `levels` is (commits, level) runs, noise is gaussian with this CV."""
    rng = np.random.default_rng(seed)
    level = np.concatenate([np.full(n, value) for n, value in levels])
    return level[:, None] * (1.0 + cv * rng.standard_normal((level.size, per_commit)))


def test_a_clean_ten_percent_step_is_found_at_its_commit() -> None:
    points = series([(60, 100.0), (60, 110.0)], cv=0.01, seed=1)
    [cp] = detect_change_points(points, direction=LOWER)
    assert abs(cp.index - 60) <= 1
    assert cp.relative_change == pytest.approx(0.10, abs=0.01)
    assert cp.ci_low < 0.10 < cp.ci_high
    assert cp.before_level == pytest.approx(100.0, rel=0.01)
    assert cp.after_level == pytest.approx(110.0, rel=0.01)
    assert cp.p_value < DetectorSettings().significance
    assert cp.kind is ChangeKind.REGRESSION
    assert (cp.before_points, cp.after_points) == (cp.index, 120 - cp.index)


@pytest.mark.parametrize("seed", range(4))
def test_noise_alone_raises_nothing(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 600
    shapes = {
        "gaussian 3%": rng.normal(0.0, 0.03, n),
        "student-t 5%": rng.standard_t(3, n) * 0.05 / np.sqrt(3.0),
        "bimodal": rng.normal(0.0, 0.01, n) + (rng.random(n) < 0.3) * 0.04,
    }
    for name, noise in shapes.items():
        assert detect_change_points(100.0 * (1.0 + noise), direction=LOWER) == [], name


@pytest.mark.parametrize("at", [10, 100, 197, 199])
def test_one_outlier_raises_nothing(at: int) -> None:
    points = series([(200, 100.0)], cv=0.01, seed=2)
    points[at] *= 3.0
    assert detect_change_points(points, direction=LOWER) == []
    assert update_change_points(points, [], at, direction=LOWER) == []


def test_a_burst_shorter_than_min_points_raises_nothing() -> None:
    points = series([(100, 100.0), (3, 130.0), (100, 100.0)], cv=0.01, seed=3)
    assert detect_change_points(points, direction=LOWER) == []


def test_a_step_then_a_recovery_gives_two_change_points_and_the_second_restores_the_level() -> None:
    points = series([(60, 100.0), (40, 112.0), (60, 100.0)], cv=0.01, seed=4)
    regression, fix = detect_change_points(points, direction=LOWER)
    assert abs(regression.index - 60) <= 1 and abs(fix.index - 100) <= 1
    assert regression.kind is ChangeKind.REGRESSION and fix.kind is ChangeKind.IMPROVEMENT
    assert regression.relative_change > 0 > fix.relative_change
    assert restores_level(regression, fix)
    assert not restores_level(fix, regression)  # earlier, not a fix of what came after


def test_a_partial_recovery_does_not_restore_the_level_and_an_overshoot_does() -> None:
    partial = series([(60, 100.0), (60, 115.0), (60, 108.0)], cv=0.005, seed=5)
    regression, better = detect_change_points(partial, direction=LOWER)
    assert better.kind is ChangeKind.IMPROVEMENT
    assert not restores_level(regression, better)  # still 8% worse than before

    overshoot = series([(60, 100.0), (60, 115.0), (60, 95.0)], cv=0.005, seed=5)
    regression, fix = detect_change_points(overshoot, direction=LOWER)
    assert restores_level(regression, fix)


def test_direction_decides_regression_or_improvement() -> None:
    up = series([(80, 100.0), (80, 108.0)], cv=0.01, seed=6)
    [ttft] = detect_change_points(up, direction=LOWER)
    [tokens_per_s] = detect_change_points(up, direction=HIGHER)
    assert ttft.kind is ChangeKind.REGRESSION  # TTFT up is worse
    assert tokens_per_s.kind is ChangeKind.IMPROVEMENT  # tokens/s up is better

    [slower] = detect_change_points(series([(80, 100.0), (80, 92.0)], cv=0.01, seed=6), direction=HIGHER)
    assert slower.kind is ChangeKind.REGRESSION and slower.relative_change < 0


def test_every_sample_of_a_commit_counts() -> None:
    """A 4% step under 8% noise per sample: mostly found with three samples per commit, seldom
    with the first sample alone (sqrt(3) times the evidence)."""
    with_three = with_one = 0
    for seed in range(20):
        points = series([(80, 100.0), (80, 104.0)], cv=0.08, seed=seed, per_commit=3)
        with_three += any(abs(cp.index - 80) <= 5 for cp in detect_change_points(points, direction=LOWER))
        with_one += any(abs(cp.index - 80) <= 5 for cp in detect_change_points(points[:, 0], direction=LOWER))
    assert with_three >= 10
    assert with_one <= 3


def test_commits_may_have_different_numbers_of_samples() -> None:
    rng = np.random.default_rng(7)
    points = [
        100.0 * (1.0 + 0.01 * rng.standard_normal(1 + i % 4)) * (1.1 if i >= 50 else 1.0) for i in range(100)
    ]
    [cp] = detect_change_points([list(p) for p in points], direction=LOWER)
    assert abs(cp.index - 50) <= 1


def test_equal_values_are_ties_not_a_trend() -> None:
    assert detect_change_points(np.full(300, 42.0), direction=LOWER) == []
    [cp] = detect_change_points(np.r_[np.full(50, 10.0), np.full(50, 11.0)], direction=LOWER)
    assert cp.index == 50 and cp.relative_change == pytest.approx(0.1)


def test_a_slow_drift_is_not_a_step() -> None:
    rng = np.random.default_rng(8)
    drift = np.linspace(100.0, 105.0, 1500) * (1.0 + 0.01 * rng.standard_normal(1500))
    assert detect_change_points(drift, direction=LOWER) == []


def test_the_same_points_give_the_same_change_points() -> None:
    points = series([(150, 100.0), (100, 97.0), (150, 104.0)], cv=0.02, seed=9, per_commit=3)
    first = detect_change_points(points, direction=HIGHER)
    assert len(first) == 2
    assert detect_change_points(points.copy(), direction=HIGHER) == first
    assert detect_change_points([list(p) for p in points], direction=HIGHER) == first


def test_updating_after_each_new_commit_ends_where_a_full_analysis_does() -> None:
    points = series([(300, 100.0), (150, 110.0), (30, 100.0), (120, 96.0)], cv=0.02, seed=10)
    found = detect_change_points(points[:250], direction=LOWER)
    for end in range(251, len(points) + 1):
        found = update_change_points(points[:end], found, end - 1, direction=LOWER)
    full = detect_change_points(points, direction=LOWER)
    assert [cp.index for cp in full] == [cp.index for cp in found]
    assert [abs(cp.index - t) <= 2 for cp, t in zip(full, (300, 450, 480), strict=True)] == [True] * 3
    # Nothing new: the update is idempotent.
    assert update_change_points(points, found, len(points), direction=LOWER) == found


def test_an_update_keeps_change_points_far_behind_the_new_commits_as_they_were() -> None:
    points = series([(400, 100.0), (400, 90.0)], cv=0.01, seed=11)
    before = detect_change_points(points[:700], direction=LOWER)
    moved = [dataclasses.replace(cp, p_value=0.5) for cp in before]  # a marker: not recomputed
    after = update_change_points(points, moved, 700, direction=LOWER)
    assert after == moved


def test_an_update_refuses_a_shorter_series() -> None:
    with pytest.raises(ValueError, match="appended"):
        update_change_points(np.ones(10), [], 20, direction=LOWER)


@pytest.mark.parametrize(
    "points", [[[1.0], []], [[1.0], [float("nan")]], np.array([[1.0, np.inf]]), np.ones((2, 0))]
)
def test_commits_without_finite_samples_are_refused(points: object) -> None:
    with pytest.raises(ValueError):
        detect_change_points(points, direction=LOWER)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [
        {"min_relative_change": -0.1},
        {"significance": 0.0},
        {"check_significance": 1.0},
        {"min_points": 1},
        {"window": 8, "min_points": 5},
    ],
)
def test_settings_are_validated(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        DetectorSettings(**bad)  # type: ignore[arg-type]


def test_min_relative_change_filters_small_significant_steps() -> None:
    points = series([(200, 100.0), (200, 101.5)], cv=0.002, seed=12)  # 1.5%, far beyond the noise
    assert detect_change_points(points, direction=LOWER) == []  # the default asks for 2%
    [cp] = detect_change_points(points, DetectorSettings(min_relative_change=0.01), direction=LOWER)
    assert cp.index == 200


# ---------------------------------------------------------------------------------------------
# The fast check


def test_the_fast_check_flags_a_clear_regression_with_a_short_history() -> None:
    history = series([(5, 100.0)], cv=0.01, seed=13)
    verdict = check_new_point(history, [125.0], direction=LOWER)
    assert verdict.status is VerdictStatus.REGRESSION
    assert verdict.relative_change == pytest.approx(0.25, abs=0.02)
    assert verdict.ci_low < verdict.relative_change < verdict.ci_high
    assert verdict.baseline_points == 5
    assert check_new_point(history, [125.0], direction=HIGHER).status is VerdictStatus.IMPROVEMENT


def test_the_fast_check_does_not_flag_a_normal_point() -> None:
    points = series([(101, 100.0)], cv=0.03, seed=14)
    flagged = [check_new_point(points[:at], points[at], direction=LOWER).status for at in range(5, 101)]
    assert set(flagged) == {VerdictStatus.NO_CHANGE}


def test_the_fast_check_needs_three_commits() -> None:
    verdict = check_new_point([[100.0], [101.0]], [150.0], direction=LOWER)
    assert verdict.status is VerdictStatus.INSUFFICIENT_HISTORY
    assert verdict.baseline_points == 2


def test_the_fast_check_uses_the_level_after_the_last_change_point() -> None:
    history = series([(60, 100.0), (40, 120.0)], cv=0.01, seed=15)
    assert check_new_point(history, [120.5], direction=LOWER).status is VerdictStatus.NO_CHANGE
    back = check_new_point(history, [100.0], direction=LOWER)
    assert back.status is VerdictStatus.IMPROVEMENT and back.baseline_points <= 41


def test_the_fast_check_does_not_flag_a_mode_the_baseline_has_shown() -> None:
    """Two runner models in one hardware class: every fourth commit lands 25% slower."""
    rng = np.random.default_rng(16)
    level = np.where(np.arange(80) % 4 == 0, 125.0, 100.0)
    history = level * (1.0 + 0.005 * rng.standard_normal(80))
    assert check_new_point(history, [125.4], direction=LOWER).status is VerdictStatus.NO_CHANGE
    assert check_new_point(history, [160.0], direction=LOWER).status is VerdictStatus.REGRESSION


def test_a_known_break_is_never_blamed_and_steps_around_it_still_are() -> None:
    """A driver update at commit 100 moves the level; a real regression follows at 200."""
    points = series([(100, 100.0), (100, 90.0), (100, 99.0)], cv=0.01, seed=17)
    assert [
        abs(cp.index - t) <= 1
        for cp, t in zip(detect_change_points(points, direction=LOWER), (100, 200), strict=True)
    ] == [True, True]
    [cp] = detect_change_points(points, direction=LOWER, breaks=[100])
    assert abs(cp.index - 200) <= 1 and cp.before_points <= 100  # tested against the new level only

    found = detect_change_points(points[:150], direction=LOWER, breaks=[100])
    for end in range(151, len(points) + 1):
        found = update_change_points(points[:end], found, end - 1, direction=LOWER, breaks=[100])
    assert [c.index for c in found] == [cp.index]
    # Breaks at the ends split nothing.
    assert detect_change_points(points, direction=LOWER, breaks=[0, 300]) == detect_change_points(
        points, direction=LOWER
    )
