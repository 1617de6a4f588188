"""Change-point detection over a benchmark series, and the fast check of one new commit.

A series is the list of its commits in first-parent order, each with all of its samples
(repeats, several runners of one hardware class). Everything here is pure: numbers in,
frozen dataclasses out, the same answer for the same input.

The change-point analysis keeps the shape of E-divisive as Apache Otava runs it (find
candidate splits, then merge away the ones that are not significant or too small, recomputing
the neighbours of each removed split), with three changes that make it robust and fast:

* Ranks instead of raw values. A split is judged by a rank-sum (Mann-Whitney) statistic of the
  samples on either side, so one wild sample moves the verdict by at most one rank and heavy
  tails or two modes do not fool it.
* The commit, not the sample, is the unit of the significance test. Commit scores are the sums
  of their samples' centred ranks, and the variance is the permutation variance of commits, so
  samples of one run that share a hiccup do not pass for independent evidence, while three
  repeats of a commit still count for more than one.
* Candidates come from a multi-scale moving-sum scan over the per-commit mean ranks, computed
  for every position and bandwidth at once with cumulative sums (O(n log n) for the ranking,
  O(n) per bandwidth), instead of a distance matrix per window. The final test of each split
  uses the commits between its neighbours, at most `window` on each side, with the
  scan-statistic correction for having picked the best split (`stats.max_split_pvalue`).

Levels are medians, the relative change carries an analytic confidence interval (median
standard errors from the commit medians, combined on the log scale), and the direction of the
metric turns a change into a regression or an improvement.

`update_change_points` re-analyses only the tail of a series after new points arrive: splits
that had `2 * window` commits after them when they were found are final, because no test
reaches further than `window` commits past a split.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import ArrayLike, NDArray

from bench_server.analysis.stats import (
    max_split_pvalue,
    mosum_critical_value,
    mosum_pvalue,
    normal_isf,
    student_t_isf,
    student_t_sf,
)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
# One entry per commit: its samples. A 1-D array is one sample per commit, a 2-D array is
# commits x samples.
Points = Sequence[ArrayLike] | NDArray[np.floating]

# MAD of a normal sample, as a standard deviation; and the asymptotic efficiency factor that
# turns a standard deviation into the standard error of a median (sqrt(pi / 2)).
MAD_TO_SD = 1.4826
MEDIAN_SE_FACTOR = math.sqrt(math.pi / 2.0)


class Direction(StrEnum):
    """Which way is better, spelled as the store spells `metrics.direction`."""

    HIGHER_IS_BETTER = "higher"
    LOWER_IS_BETTER = "lower"


class ChangeKind(StrEnum):
    REGRESSION = "regression"
    IMPROVEMENT = "improvement"


class VerdictStatus(StrEnum):
    REGRESSION = "regression"
    IMPROVEMENT = "improvement"
    NO_CHANGE = "no_change"
    INSUFFICIENT_HISTORY = "insufficient_history"


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    """Per-metric detector settings; the defaults hold on noisy shared runners.

    min_relative_change: smallest |after / before - 1| worth an alert.
    significance: the largest p-value (corrected for the choice of split) that is reported.
    min_points: the fewest commits on each side of a change point.
    window: the most commits on each side that a change point's test and levels use; bounds
        the cost and keeps slow drifts from adding up to a step.
    candidate_significance: the looser level at which the scan proposes splits to the merge.
    check_significance: the largest p-value of a fast check that flags a commit. Stricter than
        `significance`: the check judges every commit on its own, so this is about its false
        alarms per commit on a flat series.
    confidence: the level of the relative change's confidence interval.
    """

    min_relative_change: float = 0.02
    significance: float = 0.001
    min_points: int = 5
    window: int = 100
    candidate_significance: float = 0.05
    check_significance: float = 0.0002
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if self.min_relative_change < 0:
            raise ValueError("min_relative_change must be >= 0")
        for name in ("significance", "candidate_significance", "check_significance", "confidence"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in (0, 1)")
        if self.min_points < 2:
            raise ValueError("min_points must be >= 2")
        if self.window < 2 * self.min_points:
            raise ValueError("window must be at least 2 * min_points")


@dataclass(frozen=True, slots=True)
class ChangePoint:
    """A shift in level; `index` is the first commit of the new level.

    relative_change = after_level / before_level - 1 with its confidence interval
    [ci_low, ci_high]; p_value is corrected for the choice of the split; before_points and
    after_points are the commits the test used on each side.
    """

    index: int
    before_level: float
    after_level: float
    relative_change: float
    ci_low: float
    ci_high: float
    p_value: float
    kind: ChangeKind
    before_points: int
    after_points: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """The fast check of one new commit against its baseline's recent distribution."""

    status: VerdictStatus
    baseline_level: float
    new_level: float
    relative_change: float
    ci_low: float
    ci_high: float
    p_value: float
    z_score: float
    baseline_points: int


# ---------------------------------------------------------------------------------------------
# Samples


@dataclass(frozen=True, slots=True)
class _Samples:
    """All samples of a series, commit after commit: commit c is values[offsets[c]:offsets[c + 1]]."""

    values: FloatArray
    offsets: IntArray

    @property
    def commits(self) -> int:
        return len(self.offsets) - 1

    def span(self, lo: int, hi: int) -> FloatArray:
        return self.values[self.offsets[lo] : self.offsets[hi]]

    def commit_medians(self, lo: int, hi: int) -> FloatArray:
        counts = np.diff(self.offsets[lo : hi + 1])
        flat = self.span(lo, hi)
        if counts.size and np.all(counts == counts[0]):
            return np.asarray(np.median(flat.reshape(-1, int(counts[0])), axis=1), dtype=np.float64)
        starts = self.offsets[lo:hi] - self.offsets[lo]
        return np.array([np.median(flat[s : s + c]) for s, c in zip(starts, counts, strict=True)])


def _samples(points: Points) -> _Samples:
    if isinstance(points, np.ndarray):
        array = np.asarray(points, dtype=np.float64)
        if array.ndim not in (1, 2):
            raise ValueError("a points array must be 1-D (one sample per commit) or 2-D")
        per_commit = 1 if array.ndim == 1 else array.shape[1]
        if per_commit == 0:
            raise ValueError("every commit needs at least one sample")
        values = array.ravel()
        offsets = np.arange(array.shape[0] + 1, dtype=np.intp) * per_commit
    elif len(points) == 0:
        values, offsets = np.empty(0), np.zeros(1, dtype=np.intp)
    else:
        try:  # the common case, 1-D arrays or lists, without a conversion per commit
            counts = np.fromiter(map(len, points), dtype=np.intp, count=len(points))  # type: ignore[arg-type]
            values = np.concatenate(points).astype(np.float64, copy=False)
        except (TypeError, ValueError):  # scalars, or arrays of other shapes
            counts, values = np.zeros(0, dtype=np.intp), np.empty((0, 0))
        if values.ndim != 1 or counts.size != len(points):
            arrays = [np.asarray(p, dtype=np.float64).ravel() for p in points]
            counts = np.fromiter((a.size for a in arrays), dtype=np.intp, count=len(arrays))
            values = np.concatenate(arrays)
        if counts.min() == 0:
            raise ValueError(f"commit {int(np.argmin(counts))} has no samples")
        offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.intp)
    if not np.all(np.isfinite(values)):
        raise ValueError("samples must be finite numbers")
    return _Samples(values, offsets)


def _average_ranks(values: FloatArray) -> FloatArray:
    """Ranks 1..n, ties sharing the mean of their ranks (so equal values never form a trend)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    new_group = np.empty(ordered.size, dtype=bool)
    new_group[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new_group[1:])
    ranks = np.empty(ordered.size)
    if new_group.all():  # no ties, the common case for timings
        ranks[order] = np.arange(1.0, ordered.size + 1.0)
        return ranks
    group = np.cumsum(new_group) - 1
    ends = np.flatnonzero(np.append(new_group[1:], True)) + 1.0  # last rank of each group
    sizes = np.diff(np.concatenate(([0.0], ends)))
    ranks[order] = (ends - (sizes - 1.0) / 2.0)[group]
    return ranks


# ---------------------------------------------------------------------------------------------
# The test of one split


@dataclass(frozen=True, slots=True)
class _Split:
    index: int  # the first commit after the split
    z: float  # positive when the level went up
    p_value: float
    before_level: float
    after_level: float
    relative_change: float
    before_points: int
    after_points: int


def _relative(before: float, after: float) -> float:
    denominator = abs(before)
    if denominator == 0.0:
        return 0.0 if after == 0.0 else math.copysign(1.0, after)
    return (after - before) / denominator


def _best_split(samples: _Samples, lo: int, hi: int, min_points: int, alpha: float = 1.0) -> _Split:
    """The best split of commits [lo, hi) by a cluster-permutation rank-sum test, and its medians.

    Every split with min_points commits on each side is scored at once from the cumulative sums
    of the commits' centred rank sums; the p-value is corrected for having taken the best. The
    medians are left out (NaN) when the p-value is above alpha: the merge drops that split on
    its p-value alone.
    """
    flat = samples.span(lo, hi)
    ranks = _average_ranks(flat)
    starts = samples.offsets[lo:hi] - samples.offsets[lo]
    scores = np.add.reduceat(ranks - (flat.size + 1) / 2.0, starts)  # centred rank sum per commit
    n = hi - lo
    k = np.arange(min_points, n - min_points + 1)
    left_sums = np.cumsum(scores)[k - 1]
    variance = k * (n - k) / (n * (n - 1.0)) * float(np.dot(scores, scores))
    z_all = np.divide(left_sums, np.sqrt(variance), out=np.zeros(k.size), where=variance > 0.0)
    best = int(np.argmax(np.abs(z_all)))
    z, left = float(z_all[best]), int(k[best])
    p_value = max_split_pvalue(abs(z), n, min_points) if z != 0.0 else 1.0
    before = after = math.nan
    if p_value <= alpha:
        split = samples.offsets[lo + left] - samples.offsets[lo]
        before = float(np.median(flat[:split]))
        after = float(np.median(flat[split:]))
    return _Split(
        index=lo + left,
        z=-z,  # a high left rank sum means the level went down
        p_value=p_value,
        before_level=before,
        after_level=after,
        relative_change=_relative(before, after),
        before_points=left,
        after_points=n - left,
    )


def _median_se(values: FloatArray) -> float:
    if values.size < 2:
        return 0.0
    mad = float(np.median(np.abs(values - np.median(values))))
    return MEDIAN_SE_FACTOR * MAD_TO_SD * mad / math.sqrt(values.size)


def _ratio_interval(
    before: float, after: float, se_before: float, se_after: float, z: float
) -> tuple[float, float]:
    """Confidence interval of after / before - 1 from the two levels' standard errors."""
    if before > 0.0 and after > 0.0:
        se_log = math.hypot(se_before / before, se_after / after)
        centre = math.log(after / before)
        return math.expm1(centre - z * se_log), math.expm1(centre + z * se_log)
    scale = abs(before) if before != 0.0 else 1.0
    half = z * math.hypot(se_before, se_after) / scale
    centre = _relative(before, after)
    return centre - half, centre + half


def _kind(relative_change: float, direction: Direction) -> ChangeKind:
    better = relative_change > 0 if direction is Direction.HIGHER_IS_BETTER else relative_change < 0
    return ChangeKind.IMPROVEMENT if better else ChangeKind.REGRESSION


def _change_point(
    samples: _Samples, test: _Split, offset: int, settings: DetectorSettings, direction: Direction
) -> ChangePoint:
    z = normal_isf((1.0 - settings.confidence) / 2.0)
    tau = test.index
    se_before = _median_se(samples.commit_medians(tau - test.before_points, tau))
    se_after = _median_se(samples.commit_medians(tau, tau + test.after_points))
    ci_low, ci_high = _ratio_interval(test.before_level, test.after_level, se_before, se_after, z)
    return ChangePoint(
        index=tau + offset,
        before_level=test.before_level,
        after_level=test.after_level,
        relative_change=test.relative_change,
        ci_low=ci_low,
        ci_high=ci_high,
        p_value=test.p_value,
        kind=_kind(test.relative_change, direction),
        before_points=test.before_points,
        after_points=test.after_points,
    )


# ---------------------------------------------------------------------------------------------
# Candidates: a multi-scale moving-sum scan over per-commit mean ranks


def _bandwidths(settings: DetectorSettings) -> list[int]:
    widths, h = [], settings.min_points
    while h < settings.window:
        widths.append(h)
        h *= 2
    widths.append(settings.window)
    return widths


def _scan(
    scores: FloatArray, seg_lo: int, seg_hi: int, cand_lo: int, settings: DetectorSettings
) -> list[tuple[int, float, int]]:
    """(bandwidth, p-value, position) of the best split of each run of significant moving-sum differences."""
    m, window = settings.min_points, settings.window
    u = scores[seg_lo:seg_hi]
    n = u.size
    first = max(m, cand_lo - seg_lo)
    if n < 2 * m or first > n - m:
        return []
    cum = np.concatenate(([0.0], np.cumsum(u)))
    # Noise level from successive differences within `window` of each position: a step adds
    # one difference, a slow drift almost nothing.
    diff2 = np.concatenate(([0.0], np.cumsum(np.diff(u) ** 2)))
    tau = np.arange(first, n - m + 1)
    d_lo = np.maximum(tau - window, 0)
    d_hi = np.minimum(tau + window, n) - 1
    noise = (diff2[d_hi] - diff2[d_lo]) / (2.0 * (d_hi - d_lo))
    found: list[tuple[int, float, int]] = []
    for h in _bandwidths(settings):
        left = np.minimum(h, tau)
        right = np.minimum(h, n - tau)
        delta = (cum[tau + right] - cum[tau]) / right - (cum[tau] - cum[tau - left]) / left
        spread = np.sqrt(noise * (1.0 / left + 1.0 / right))
        z = np.divide(delta, spread, out=np.zeros_like(delta), where=spread > 0.0)
        positions = n - 2 * m + 1
        hits = np.flatnonzero(
            np.abs(z) >= mosum_critical_value(positions, h, settings.candidate_significance)
        )
        if hits.size == 0:
            continue
        # Runs of consecutive hits of one sign; the best position of each run is a candidate.
        breaks = np.flatnonzero((np.diff(hits) > 1) | (np.diff(np.sign(z[hits])) != 0)) + 1
        for run in np.split(hits, breaks):
            best = int(run[np.argmax(np.abs(z[run]))])
            # Only a local maximum within half a bandwidth: the shoulders of a strong step's
            # peak, or the trough between two steps, are not steps of their own.
            reach = max(1, h // 2)
            if abs(z[best]) < np.abs(z[max(0, best - reach) : best + reach + 1]).max():
                continue
            found.append((h, mosum_pvalue(abs(float(z[best])), positions, h), int(tau[best]) + seg_lo))
        if h >= n // 2:
            break
    return found


def _candidates(
    samples: _Samples, fixed: Sequence[int], cand_lo: int, settings: DetectorSettings
) -> list[int]:
    """Candidate splits at least min_points from each other and from fixed boundaries.

    Bottom-up over the bandwidths (Cho and Kirch's multiscale MOSUM merging): the finest
    bandwidth localises a step best, so a coarser bandwidth adds a candidate only where no finer
    one was found within a quarter of its bandwidth.
    """
    n = samples.commits
    ranks = _average_ranks(samples.values)
    counts = np.diff(samples.offsets)
    scores = np.add.reduceat(ranks, samples.offsets[:-1]) / counts / samples.values.size
    bounds = [0, *fixed, n]
    proposals: list[tuple[int, float, int]] = []
    for seg_lo, seg_hi in zip(bounds[:-1], bounds[1:], strict=True):
        proposals.extend(_scan(scores, seg_lo, seg_hi, cand_lo, settings))
    proposals.sort()
    taken: list[int] = []
    m = settings.min_points
    for h, _, position in proposals:
        radius = max(m, h // 4)
        if all(abs(position - t) >= radius for t in taken) and all(abs(position - f) >= m for f in fixed):
            taken.append(position)
    return sorted(taken)


# ---------------------------------------------------------------------------------------------
# Merge: drop the weakest split until every split left is significant and large enough


# How often one split may move to the best split of its window before it stays put; moves
# settle in one or two steps, the cap only rules out a cycle between neighbours.
MAX_MOVES = 4


@dataclass(slots=True)
class _Boundary:
    index: int
    fixed: bool
    test: _Split | None = None
    moves: int = 0


def _merge(
    samples: _Samples, candidates: list[int], fixed: Sequence[int], settings: DetectorSettings
) -> list[_Split]:
    """Otava's merge, with each split settling at the best split between its neighbours.

    Each candidate is tested on the commits between its neighbours, at most `window` on each
    side, and moves to the best split there, so where a change point lands depends only on the
    data around it (the scan's ranks are global; these are not). Then, while any split is not
    significant or moves less than min_relative_change, the weakest one goes and its neighbours
    are tested again.
    """
    bounds = sorted(
        [_Boundary(i, False) for i in candidates] + [_Boundary(i, True) for i in fixed], key=lambda b: b.index
    )
    n, window, m = samples.commits, settings.window, settings.min_points

    def settle(i: int) -> None:
        b = bounds[i]
        lo = max(bounds[i - 1].index if i > 0 else 0, b.index - window)
        hi = min(bounds[i + 1].index if i + 1 < len(bounds) else n, b.index + window)
        b.test = _best_split(samples, lo, hi, m, settings.significance)
        if b.test.index != b.index and b.moves < MAX_MOVES:
            b.index, b.moves, b.test = b.test.index, b.moves + 1, None
            for j in (i - 1, i + 1):  # their windows end at this split
                if 0 <= j < len(bounds):
                    bounds[j].test = None

    def weakness(t: _Split) -> tuple[int, float] | None:
        if t.p_value > settings.significance:
            return (1, t.p_value)
        if abs(t.relative_change) < settings.min_relative_change:
            return (0, -abs(t.relative_change))
        return None

    while True:
        while unsettled := [i for i, b in enumerate(bounds) if b.test is None and not b.fixed]:
            for i in unsettled:
                if bounds[i].test is None:
                    settle(i)
        weakest: tuple[tuple[int, float], int] | None = None
        for i, b in enumerate(bounds):
            w = None if b.fixed or b.test is None else weakness(b.test)
            if w is not None and (weakest is None or w > weakest[0]):
                weakest = (w, i)
        if weakest is None:
            break
        i = weakest[1]
        del bounds[i]
        for j in (i - 1, i):  # the neighbours' windows just grew
            if 0 <= j < len(bounds):
                bounds[j].test = None
    return [b.test for b in bounds if not b.fixed and b.test is not None]


def _analyse(
    samples: _Samples,
    offset: int,
    fixed: Sequence[int],
    cand_lo: int,
    settings: DetectorSettings,
    direction: Direction,
) -> list[ChangePoint]:
    candidates = _candidates(samples, fixed, cand_lo, settings)
    return [
        _change_point(samples, test, offset, settings, direction)
        for test in _merge(samples, candidates, fixed, settings)
    ]


# ---------------------------------------------------------------------------------------------
# Public API


def detect_change_points(
    points: Points, settings: DetectorSettings | None = None, *, direction: Direction
) -> list[ChangePoint]:
    """Every change point of a series, oldest first. Deterministic: same points, same answer."""
    settings = settings or DetectorSettings()
    samples = _samples(points)
    return _analyse(samples, 0, (), 0, settings, direction)


def update_change_points(
    points: Points,
    previous: Sequence[ChangePoint],
    analysed_length: int,
    settings: DetectorSettings | None = None,
    *,
    direction: Direction,
) -> list[ChangePoint]:
    """The change points after new commits were appended to a series analysed before.

    `previous` is what the last analysis of the first `analysed_length` commits returned (by
    this function or `detect_change_points`, with the same settings). Change points followed by
    at least 2 * window analysed commits are kept as they are; only the tail is analysed again,
    so the cost depends on the window, not on the length of the series.
    """
    settings = settings or DetectorSettings()
    n = len(points)
    if analysed_length > n:
        raise ValueError("points may only be appended: analysed_length is past the end")
    final_before = max(0, analysed_length - 2 * settings.window)
    kept = [cp for cp in previous if cp.index < final_before]
    context = max(0, final_before - settings.window)
    tail = _samples(points[context:])
    fixed = [cp.index - context for cp in kept if cp.index >= context]
    fresh = _analyse(tail, context, fixed, final_before - context, settings, direction)
    return kept + fresh


def restores_level(change: ChangePoint, later: ChangePoint, settings: DetectorSettings | None = None) -> bool:
    """Whether `later` undoes `change`: it moves the other way and brings the level back.

    Back means within min_relative_change of the level before `change`, or past it (a fix that
    overshoots still fixes the regression). The service marks a regression's alert fixed on it.
    """
    settings = settings or DetectorSettings()
    if later.index <= change.index or later.relative_change * change.relative_change >= 0:
        return False
    remaining = _relative(change.before_level, later.after_level)
    # What is left of the original move, measured in the original move's direction.
    left_over = remaining if change.relative_change > 0 else -remaining
    return left_over < settings.min_relative_change


def check_new_point(
    history: Points,
    new_samples: ArrayLike,
    settings: DetectorSettings | None = None,
    *,
    direction: Direction,
) -> Verdict:
    """Judge one new commit's samples against the recent distribution of its baseline.

    `history` is the baseline series up to the commit to compare with (for a pull request, up
    to its merge-base), oldest first. Only its last `window` commits after its last change
    point count. The new commit's median is compared with the median of those commits'
    medians, scaled by their robust spread, with Student's t for a short history; the spread
    is widened when the new commit has fewer samples than the baseline's commits.
    """
    settings = settings or DetectorSettings()
    new = np.asarray(new_samples, dtype=np.float64).ravel()
    if new.size == 0 or not np.all(np.isfinite(new)):
        raise ValueError("new_samples must be one or more finite numbers")
    new_level = float(np.median(new))
    samples = _samples(history)
    start = max(0, samples.commits - settings.window)
    if samples.commits - start >= 2 * settings.min_points:
        recent = _analyse(_samples(history[start:]), start, (), 0, settings, direction)
        if recent:
            start = recent[-1].index
    medians = samples.commit_medians(start, samples.commits)
    k = medians.size
    baseline = float(np.median(samples.span(start, samples.commits))) if k else math.nan
    if k < 3:
        return Verdict(VerdictStatus.INSUFFICIENT_HISTORY, baseline, new_level, math.nan, math.nan, math.nan,
                       math.nan, math.nan, k)  # fmt: skip
    kept = _without_rare_outliers(medians)
    centre, spread = float(np.mean(kept)), float(np.std(kept, ddof=1))
    # Fewer samples in the new commit than in the baseline's commits: its median is noisier.
    per_commit = float(np.median(np.diff(samples.offsets[start:])))
    spread *= math.sqrt(max(1.0, per_commit / new.size))
    # A floor for series that are (almost) constant: 0.1% of the level.
    spread = max(spread, 1e-3 * abs(baseline), 1e-12)
    scale = spread * math.sqrt(1.0 + 1.0 / kept.size)  # a prediction, not a mean: 1 + 1/k
    df = kept.size - 1
    z = (new_level - centre) / scale
    p_value = min(1.0, 2.0 * student_t_sf(abs(z), df))
    relative = _relative(baseline, new_level)
    half = student_t_isf((1.0 - settings.confidence) / 2.0, df) * scale / (abs(baseline) or 1.0)
    # Never flag a level the baseline has already shown (a second mode: another runner model).
    unseen = new_level > medians.max() or new_level < medians.min()
    status = VerdictStatus.NO_CHANGE
    if unseen and p_value <= settings.check_significance and abs(relative) >= settings.min_relative_change:
        kind = _kind(relative, direction)
        status = VerdictStatus.REGRESSION if kind is ChangeKind.REGRESSION else VerdictStatus.IMPROVEMENT
    return Verdict(status, baseline, new_level, relative, relative - half, relative + half, p_value, z, k)


def _without_rare_outliers(values: FloatArray) -> FloatArray:
    """The values without those beyond 5 MAD-SDs of the median, when they are rare (<= 5%).

    Frequent ones are a second mode, not outliers: they stay, and widen the spread. Under ten
    values the MAD is too rough to tell, and all of them stay.
    """
    if values.size < 10:
        return values
    centre = float(np.median(values))
    mad = MAD_TO_SD * float(np.median(np.abs(values - centre)))
    if mad == 0.0:
        return values
    far = np.abs(values - centre) > 5.0 * mad
    count = int(far.sum())
    if count == 0 or count > max(1, 0.05 * values.size):
        return values
    return values[~far]
