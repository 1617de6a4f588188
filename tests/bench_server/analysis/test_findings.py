"""The pure parts around the detector: failure histories into findings, series from rows, and
the stored form of change points."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench_server.analysis.detector import ChangeKind, ChangePoint, DetectorSettings, Direction
from bench_server.analysis.findings import FailureSettings, failure_findings, series_findings
from bench_server.analysis.series import change_point_from_json, change_point_to_json, group_rows


def found(pattern: str, **settings: int) -> list[tuple[str, int, int | None, int | None]]:
    findings = failure_findings([c == "F" for c in pattern], FailureSettings(**settings))
    return [(f.kind, f.index, f.previous, f.fixed_at) for f in findings]


def test_a_benchmark_that_starts_failing_is_named_at_its_first_failure() -> None:
    assert found("PPPPPFFF") == [("starts_failing", 5, 4, None)]
    assert found("PPPPPF") == []  # one failure may be a flake
    assert found("PPPPPF", streak=1) == [("starts_failing", 5, 4, None)]
    assert found("FFFF") == []  # it never ran: nothing started failing


def test_a_recovery_fixes_the_failure_and_is_its_own_finding() -> None:
    assert found("PPPFFFPP") == [("starts_failing", 3, 2, 6), ("recovered", 6, 5, None)]


def test_a_benchmark_failing_now_and_then_is_flaky_until_it_calms_down() -> None:
    assert found("PPPFPPFPP") == [("flaky", 3, 2, None)]
    calm = "PPPFPPFP" + "P" * 10
    assert found(calm) == [("flaky", 3, 2, 7)]  # ten passes in a row (window 20 // 2)
    (flaky,) = failure_findings([c == "F" for c in "PPPFPPFPPP"], FailureSettings())
    assert flaky.failure_rate == pytest.approx(0.2) and flaky.failure_window == 10
    assert found("PFPFP" + "P" * 30 + "PFPFP")[-1] == ("flaky", 36, 35, None)  # a second episode


def test_failure_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        FailureSettings(window=2)
    with pytest.raises(ValueError):
        FailureSettings(streak=0)


def test_a_restoring_change_point_is_the_fix_not_an_improvement() -> None:
    rng = np.random.default_rng(3)
    values = np.r_[100 + rng.normal(0, 1, 30), 90 + rng.normal(0, 1, 30), 100 + rng.normal(0, 1, 30)]
    points = [np.array([v]) for v in values]
    down = ChangePoint(30, 100.0, 90.0, -0.1, -0.11, -0.09, 1e-9, ChangeKind.REGRESSION, 30, 30)
    up = ChangePoint(60, 90.0, 100.0, 0.111, 0.1, 0.12, 1e-9, ChangeKind.IMPROVEMENT, 30, 30)
    findings = series_findings(points, [down, up], DetectorSettings(), Direction.HIGHER_IS_BETTER)
    assert [(f.kind, f.index, f.fixed_at) for f in findings] == [("regression", 30, 60)]


def test_series_keep_every_sample_of_a_commit_in_order() -> None:
    rows = [(("a",), 7, 1, 1.0), (("b",), 7, 1, 5.0), (("a",), 7, 1, 2.0), (("a",), 9, 2, 3.0)]
    series = group_rows(rows)
    a = series[("a",)]
    assert a.commit_ids == [7, 9] and a.order_keys == [1, 2]
    assert [s.tolist() for s in a.samples] == [[1.0, 2.0], [3.0]]
    assert a.prefix_hash(1) == group_rows(rows[:1] + rows[2:3])[("a",)].prefix_hash(1)
    assert a.prefix_hash(1) != a.prefix_hash(2) and a.prefix_hash(3) is None
    assert a.position() == {7: 0, 9: 1}


def test_change_points_survive_json_even_with_nan() -> None:
    cp = ChangePoint(4, 1.0, 2.0, 1.0, math.nan, 3.0, 1e-6, ChangeKind.REGRESSION, 4, 5)
    stored = change_point_to_json(cp)
    assert stored["ci_low"] is None and stored["kind"] == "regression"
    back = change_point_from_json(stored)
    assert math.isnan(back.ci_low) and back.kind is ChangeKind.REGRESSION
    assert (back.index, back.after_points, back.p_value) == (4, 5, 1e-6)
