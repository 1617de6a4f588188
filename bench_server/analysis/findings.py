"""What a series says, as alerts-to-be: pure functions from the detector's output and from a
benchmark's pass/fail history to findings placed at positions of the series.

The service turns positions into commits and findings into alert rows; nothing here touches the
database, so the same data always gives the same findings (re-analysis is idempotent).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

from bench_server.analysis.detector import (
    ChangeKind,
    ChangePoint,
    DetectorSettings,
    Direction,
    Points,
    Verdict,
    VerdictStatus,
    check_new_point,
    restores_level,
)


@dataclass(frozen=True, slots=True)
class FailureSettings:
    """When failures become alerts.

    window: the last runs (commits) a flaky benchmark's failure rate is measured over.
    streak: consecutive failing commits after a pass that make "starts failing" (one failure
        alone may be a flake; the alert still names the first failing commit).
    A benchmark is flaky when it failed and recovered at least twice within `window`; it is no
    longer flaky after window // 2 passing commits in a row.
    """

    window: int = 20
    streak: int = 2

    def __post_init__(self) -> None:
        if self.window < 4:
            raise ValueError("failure_window must be >= 4")
        if self.streak < 1:
            raise ValueError("failure_streak must be >= 1")


@dataclass(frozen=True, slots=True)
class Finding:
    """An alert-to-be. `index` is the position of the suspect commit (the first of the new
    level, or the first failing one), `previous` the position of the last commit before it,
    `fixed_at` the position of the commit that brought the level back or made it pass again."""

    kind: str
    detector: str
    index: int
    previous: int | None
    relative_change: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    before_value: float | None = None
    after_value: float | None = None
    failure_rate: float | None = None
    failure_window: int | None = None
    fixed_at: int | None = None


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _measured(
    kind: str,
    detector: str,
    index: int,
    previous: int | None,
    numbers: tuple[float, ...],
    fixed_at: int | None,
) -> Finding:
    """A finding with its numbers: relative change, ci low and high, p-value, levels before and after."""
    change, low, high, p_value, before, after = (_number(x) for x in numbers)
    return Finding(
        kind, detector, index, previous, change, low, high, p_value, before, after, fixed_at=fixed_at
    )


def _from_change_point(cp: ChangePoint, fixed_at: int | None) -> Finding:
    numbers = (cp.relative_change, cp.ci_low, cp.ci_high, cp.p_value, cp.before_level, cp.after_level)
    return _measured(cp.kind.value, "change_point", cp.index, cp.index - 1, numbers, fixed_at)


def verdict_finding(verdict: Verdict, index: int, previous: int | None) -> Finding | None:
    """The fast check's verdict on one commit, as a finding if it flags the commit."""
    if verdict.status not in (VerdictStatus.REGRESSION, VerdictStatus.IMPROVEMENT):
        return None
    v = verdict
    numbers = (v.relative_change, v.ci_low, v.ci_high, v.p_value, v.baseline_level, v.new_level)
    return _measured(v.status.value, "check", index, previous, numbers, None)


def series_findings(
    points: Points, change_points: Sequence[ChangePoint], settings: DetectorSettings, direction: Direction
) -> list[Finding]:
    """The default branch's findings: every change point, and the fast check of the newest
    commits, those with too few commits after them for a change point (fewer than min_points).

    A regression is fixed by the first later change point that restores its level; that change
    point is the fix, not an improvement of its own.
    """
    fixed_at: dict[int, int] = {}
    restoring: set[int] = set()
    for i, cp in enumerate(change_points):
        if cp.kind is not ChangeKind.REGRESSION:
            continue
        for later in change_points[i + 1 :]:
            if restores_level(cp, later, settings):
                fixed_at[cp.index] = later.index
                restoring.add(later.index)
                break
    found = [
        _from_change_point(cp, fixed_at.get(cp.index)) for cp in change_points if cp.index not in restoring
    ]
    at_change_point = {cp.index for cp in change_points}
    n = len(points)
    for i in range(max(1, n - settings.min_points + 1), n):
        if i in at_change_point:
            continue
        verdict = check_new_point(points[:i], points[i], settings, direction=direction)
        finding = verdict_finding(verdict, i, i - 1)
        if finding is not None:
            found.append(finding)
    return found


@dataclass
class _Open:
    finding: Finding
    at: int  # the position where it was opened


def failure_findings(failed: Sequence[bool], settings: FailureSettings) -> list[Finding]:
    """Findings from one benchmark's outcome per commit (True: it failed there), oldest first.

    starts_failing: `streak` failing commits in a row after a pass, at the first of them; fixed
    by the next passing commit, which is a `recovered` finding. flaky: failed and recovered
    twice within `window`, at the first failure of that window, with the failure rate of the
    last `window` commits; fixed after window // 2 passes in a row.
    """
    found: list[Finding] = []
    state: _Open | None = None  # the open starts_failing or flaky finding
    since = 0  # failures before a closed flaky episode do not start another
    calm = settings.window // 2
    for i, fail in enumerate(failed):
        if state is not None and state.finding.kind == "starts_failing" and not fail:
            found.append(replace(state.finding, fixed_at=i))
            found.append(Finding("recovered", "failures", i, i - 1))
            state = None
        elif state is not None and state.finding.kind == "flaky":
            lo = max(0, i - settings.window + 1)
            window = failed[lo : i + 1]
            rate = sum(window) / len(window)
            state.finding = replace(state.finding, failure_rate=rate, failure_window=len(window))
            if i - calm + 1 >= state.at and not any(failed[i - calm + 1 : i + 1]):
                found.append(replace(state.finding, fixed_at=i - calm + 1))
                since, state = i - calm + 1, None
            continue
        if state is not None:
            continue
        lo = max(since, i - settings.window + 1)
        window = failed[lo : i + 1]
        recoveries = sum(1 for a, b in pairwise(window) if a and not b)
        if recoveries >= 2:
            first = lo + list(window).index(True)
            rate = sum(window) / len(window)
            flaky = Finding(
                "flaky",
                "failures",
                first,
                first - 1 if first > 0 else None,
                failure_rate=rate,
                failure_window=len(window),
            )
            state = _Open(flaky, i)
            continue
        if fail:
            start = i
            while start > 0 and failed[start - 1]:
                start -= 1
            if i - start + 1 >= settings.streak and start > 0:
                state = _Open(Finding("starts_failing", "failures", start, start - 1), i)
    if state is not None:
        found.append(state.finding)
    return sorted(found, key=lambda f: (f.index, f.kind))
