"""The analysis: from stored results to alerts, incidents and annotations, and their triage.

Work comes in small units, each run in its own transaction by the caller (the `analysis.*`
tasks, `bench-server analyse`): one benchmark on one hardware class (its series, one per metric
and machine fingerprint), one benchmark's failures, one hardware class's fingerprints, or one
pull-request commit. Each unit locks the series rows it writes, reads the results (in
first-parent order, from `history.service`), runs the pure detector, and reconciles what it
found with the stored alerts: the same data gives the same rows, so re-running is idempotent.

- Default branch: change points over each series (incrementally: `update_change_points` from
  the stored state while the analysed commits are unchanged), and the fast check of the newest
  commits, those too recent for a change point. A later change point that restores a
  regression's level fixes it.
- Another branch (a pull request): each commit is judged by `check_new_point` against the
  default branch's series up to its merge-base (`context.merge_base` of its batch, else the
  first ancestor on the default branch, else everything before it).
- A new machine fingerprint in a hardware class is an `environment_change` annotation; its
  results form new series, so the commit is not blamed for the driver.
- Failures: a benchmark that starts failing, fails now and then, or recovers (`findings.py`).

Alerts of one suspect commit form its incident, across benchmarks and hardware classes. Nothing
here commits; only the task or command boundary does.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from bench_server.analysis import repository as repo
from bench_server.analysis.detector import (
    DetectorSettings,
    Direction,
    check_new_point,
    detect_change_points,
    update_change_points,
)
from bench_server.analysis.findings import (
    FailureSettings,
    Finding,
    failure_findings,
    series_findings,
    verdict_finding,
)
from bench_server.analysis.repository import ANALYSIS_ACTOR
from bench_server.analysis.schemas import (
    AlertFilters,
    AnnotationFilters,
    IncidentFilters,
    SettingsIn,
    StateIn,
)
from bench_server.analysis.series import (
    SeriesPoints,
    change_point_from_json,
    change_point_to_json,
    group_rows,
)
from bench_server.catalog.repository import project_by_slug
from bench_server.history import service as history
from bench_server.history.service import ValueSlice
from bench_server.kit.errors import InvalidInput, NotFound
from bench_server.kit.outbox import AppContext, enqueue_after_commit
from bench_server.kit.paging import Listing
from bench_server.kit.settings import Settings
from bench_server.kit.sql import stable_hash
from bench_server.models import (
    Alert,
    AnalysisSeries,
    Annotation,
    Commit,
    Incident,
    Machine,
    Project,
    TriageEvent,
)
from bench_server.models.base import utcnow
from bench_server.tasks import TASKS

# Tasks told about an incident (its id) after the transaction that created it, changed its state
# or changed its alerts has committed. Each is sent only while `bench_server.tasks.TASKS`
# declares it: the reports domain plugs in by declaring `reports.incident_changed` there, with no
# change here.
INCIDENT_HOOKS: tuple[str, ...] = ("reports.incident_changed",)
# Alerts that want a fix; an incident whose every such alert is fixed is fixed.
NEEDS_FIX = ("regression", "starts_failing", "flaky")
OPEN_STATES = ("new", "acknowledged")
# How far back beat looks for batches whose `analysis.update` never finished.
CATCH_UP_HORIZON = timedelta(days=1)
CATCH_UP_BATCH = 200
# The longest first-parent walk from a pull request's commit to the default branch.
MAX_ANCESTRY_WALK = 1000


# ---------------------------------------------------------------------------------------------
# Units of work


@dataclass(frozen=True)
class MetricWork:
    """The series of one benchmark on one hardware class: one machine's or all, some metrics or
    all; `full` analyses from scratch whatever was stored."""

    project_id: int
    hardware_class_id: int
    benchmark_id: int
    machine_id: int | None = None
    metric_ids: tuple[int, ...] | None = None
    full: bool = False


@dataclass(frozen=True)
class FailureWork:
    """Whether one benchmark (None: the suite itself) ran or failed on a hardware class."""

    project_id: int
    hardware_class_id: int
    suite: str
    benchmark_id: int | None


@dataclass(frozen=True)
class EnvironmentWork:
    """The machine fingerprints of one hardware class over the default branch."""

    project_id: int
    hardware_class_id: int


@dataclass(frozen=True)
class CommitWork:
    """One commit off the default branch, judged against the default branch at its merge-base."""

    project_id: int
    commit_id: int
    branch: str
    hardware_class_id: int
    benchmark_id: int
    machine_id: int
    metric_ids: tuple[int, ...] | None = None


Work = MetricWork | FailureWork | EnvironmentWork | CommitWork


@dataclass
class Summary:
    """What a run of the analysis did."""

    series: int = 0
    change_points: int = 0
    alerts_created: int = 0
    alerts_updated: int = 0
    alerts_withdrawn: int = 0
    incidents_created: int = 0
    incidents_changed: int = 0
    annotations: int = 0

    def add(self, other: Summary) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


# ---------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class ProjectSettings:
    """A project's overrides: by metric name, '*' for every metric."""

    overrides: dict[str, dict[str, Any]]

    def detector(self, metric: str) -> DetectorSettings:
        merged = {**self.overrides.get("*", {}), **self.overrides.get(metric, {})}
        names = {f.name for f in fields(DetectorSettings)}
        return replace(DetectorSettings(), **{k: v for k, v in merged.items() if k in names})

    def failures(self) -> FailureSettings:
        project = self.overrides.get("*", {})
        values = {field: project[key] for key, field in FAILURE_FIELDS.items() if key in project}
        return replace(FailureSettings(), **values)


# Project-level keys of the failure settings, and their names in FailureSettings.
FAILURE_FIELDS = {"failure_window": "window", "failure_streak": "streak"}


def project_settings(session: Session, project_id: int) -> ProjectSettings:
    return ProjectSettings(repo.settings_rows(session, project_id))


def _hash_settings(settings: DetectorSettings | FailureSettings) -> str:
    return stable_hash(asdict(settings))


def built_in_settings() -> dict[str, Any]:
    failures = FailureSettings()
    return {
        **asdict(DetectorSettings()),
        **{key: getattr(failures, field) for key, field in FAILURE_FIELDS.items()},
    }


def settings_view(session: Session, slug: str) -> dict[str, Any]:
    """The built-in defaults, the project's overrides and what holds for each metric named."""
    project = project_by_slug(session, slug)
    settings = project_settings(session, project.id)
    overrides = settings.overrides
    failures = settings.failures()
    effective = {
        "*": {
            **asdict(settings.detector("*")),
            **{key: getattr(failures, field) for key, field in FAILURE_FIELDS.items()},
        },
        **{m: asdict(settings.detector(m)) for m in sorted(overrides) if m != "*"},
    }
    return {
        "project": project.slug,
        "built_in": built_in_settings(),
        "defaults": overrides.get("*", {}),
        "metrics": {m: v for m, v in sorted(overrides.items()) if m != "*"},
        "effective": effective,
    }


def replace_settings(session: Session, ctx: AppContext, slug: str, body: SettingsIn) -> dict[str, Any]:
    """Store a project's settings (all of them: PUT) and re-analyse the project after commit."""
    project = project_by_slug(session, slug)
    overrides: dict[str, dict[str, Any]] = {}
    defaults = body.defaults.model_dump(exclude_none=True)
    if defaults:
        overrides["*"] = defaults
    for metric, values in body.metrics.items():
        if metric == "*" or not metric.strip():
            raise InvalidInput(f"metrics.{metric}", "name a metric; project-wide values go in defaults")
        dumped = values.model_dump(exclude_none=True)
        if dumped:
            overrides[metric] = dumped
    checked = ProjectSettings(overrides)
    for metric in ("*", *overrides):
        try:
            checked.detector(metric)
            checked.failures()
        except ValueError as exc:
            where = "defaults" if metric == "*" else f"metrics.{metric}"
            raise InvalidInput(where, str(exc)) from exc
    repo.replace_settings(session, project.id, overrides)
    enqueue_after_commit(session, ctx, "analysis.reanalyse_project", project.id)
    return settings_view(session, slug)


# ---------------------------------------------------------------------------------------------
# Planning


def plan_batch(session: Session, batch_id: int) -> list[Work]:
    """The units of work one ingest batch makes necessary."""
    found = repo.batch(session, batch_id)
    if found is None:
        return []
    batch, hardware_class_id = found
    project = repo.project(session, batch.project_id)
    branch = batch.branch or project.default_branch
    result_keys = repo.batch_result_keys(session, batch_id)
    metrics_of: dict[int, set[int]] = defaultdict(set)
    for benchmark_id, _, metric_id in result_keys:
        metrics_of[benchmark_id].add(metric_id)
    work: list[Work] = []
    if branch != project.default_branch:
        for benchmark_id, metric_ids in sorted(metrics_of.items()):
            work.append(
                CommitWork(
                    project.id,
                    batch.commit_id,
                    branch,
                    hardware_class_id,
                    benchmark_id,
                    batch.machine_id,
                    tuple(sorted(metric_ids)),
                )
            )
        return work
    if not repo.machine_seen_before(session, batch):
        work.append(EnvironmentWork(project.id, hardware_class_id))
    for benchmark_id, metric_ids in sorted(metrics_of.items()):
        work.append(
            MetricWork(
                project.id, hardware_class_id, benchmark_id, batch.machine_id, tuple(sorted(metric_ids))
            )
        )
    # Failure series this batch moves: those it failed, and those it ran that failed before.
    candidates: set[tuple[str, int | None]] = {(suite, bench) for bench, suite, _ in result_keys}
    candidates |= {(suite, None) for _, suite, _ in result_keys}
    candidates |= set(repo.batch_failure_keys(session, batch_id))
    known = {(s, b) for _, s, b in repo.failure_keys(session, project.id, branch, hardware_class_id)}
    for suite, bench in sorted(candidates & known, key=lambda k: (k[0], k[1] or 0)):
        work.append(FailureWork(project.id, hardware_class_id, suite, bench))
    return work


def project_ids(session: Session, slug: str | None = None) -> list[int]:
    return repo.all_project_ids(session, slug)


def totals(session: Session, project_ids: Sequence[int]) -> dict[str, dict[str, int]]:
    """What is stored now: alerts by kind and state, incidents by state."""
    return repo.totals(session, project_ids)


def plan_project(session: Session, project_id: int) -> list[Work]:
    """Everything of a project, from scratch."""
    project = repo.project(session, project_id)
    branch = project.default_branch
    work: list[Work] = [
        EnvironmentWork(project.id, hw)
        for hw in repo.hardware_classes_with_batches(session, project.id, branch)
    ]
    work += [
        MetricWork(project.id, hw, b, full=True) for hw, b in repo.metric_groups(session, project.id, branch)
    ]
    keys = sorted(repo.failure_keys(session, project.id, branch), key=lambda k: (k[0], k[1], k[2] or 0))
    work += [FailureWork(project.id, hw, suite, b) for hw, suite, b in keys]
    work += [
        CommitWork(project.id, c, br, hw, b, m)
        for c, br, hw, b, m in repo.other_branch_checks(session, project.id, branch)
    ]
    return work


def run(session: Session, ctx: AppContext, work: Work) -> Summary:
    if isinstance(work, MetricWork):
        return _run_metrics(session, ctx, work)
    if isinstance(work, FailureWork):
        return _run_failures(session, ctx, work)
    if isinstance(work, EnvironmentWork):
        return _run_environment(session, work)
    return _run_commit(session, ctx, work)


def mark_analysed(session: Session, batch_id: int) -> None:
    repo.mark_analysed(session, batch_id)


def missed_batches(session: Session, settings: Settings) -> list[int]:
    """Recent batches whose analysis never finished (the task was lost, or failed for good)."""
    now = utcnow()
    return repo.unanalysed_batches(
        session, now - CATCH_UP_HORIZON, now - timedelta(seconds=settings.analysis_catch_up_s), CATCH_UP_BATCH
    )


# ---------------------------------------------------------------------------------------------
# Series of the default branch


def _metric_series_row(
    project_id: int,
    branch: str,
    hardware_class_id: int,
    suite: str,
    benchmark_id: int,
    metric_id: int,
    machine: Machine,
) -> dict[str, Any]:
    key = {
        "kind": "metric",
        "project": project_id,
        "branch": branch,
        "hardware_class": hardware_class_id,
        "benchmark": benchmark_id,
        "metric": metric_id,
        "machine": machine.id,
    }
    return {
        "project_id": project_id,
        "kind": "metric",
        "key_hash": stable_hash(key),
        "branch": branch,
        "hardware_class_id": hardware_class_id,
        "suite": suite,
        "benchmark_id": benchmark_id,
        "metric_id": metric_id,
        "machine_id": machine.id,
        "fingerprint_hash": machine.fingerprint_hash,
    }


@dataclass(frozen=True)
class _Template:
    """What every alert of a series carries."""

    project_id: int
    suite: str
    benchmark_id: int | None
    metric_id: int | None
    hardware_class_id: int


def _metric_series(
    session: Session,
    project: Project,
    hardware_class_id: int,
    benchmark_id: int,
    keys: Iterable[tuple[int, int]],
) -> dict[tuple[int, int], AnalysisSeries]:
    """The locked series rows of the default branch for (metric, machine) keys."""
    keys = sorted(set(keys))
    bench = repo.benchmark(session, benchmark_id)
    machines = repo.machines_by_id(session, {machine for _, machine in keys})
    rows = {
        k: _metric_series_row(
            project.id, project.default_branch, hardware_class_id, bench.suite, bench.id, k[0], machines[k[1]]
        )
        for k in keys
    }
    locked = repo.ensure_series(session, list(rows.values()))
    return {k: locked[row["key_hash"]] for k, row in rows.items()}


def _run_metrics(session: Session, ctx: AppContext, work: MetricWork) -> Summary:
    project = repo.project(session, work.project_id)
    branch = project.default_branch
    if work.machine_id is not None and work.metric_ids is not None:
        keys = [(m, work.machine_id) for m in work.metric_ids]
    else:
        keys = [
            (m, machine)
            for m, machine in repo.group_keys(
                session, project.id, branch, work.hardware_class_id, work.benchmark_id
            )
            if (work.machine_id is None or machine == work.machine_id)
            and (work.metric_ids is None or m in work.metric_ids)
        ]
    summary = Summary()
    if not keys:
        return summary
    # Lock first, then read: a concurrent analysis of these series waits, then sees our data.
    series = _metric_series(session, project, work.hardware_class_id, work.benchmark_id, keys)
    only = ValueSlice(metric_ids=work.metric_ids, machine_id=work.machine_id)
    points_of = group_rows(
        history.series_values(session, project.id, work.benchmark_id, work.hardware_class_id, branch, only)
    )
    metrics = repo.metrics_by_id(session, {m for m, _ in keys})
    settings = project_settings(session, project.id)
    existing = _by_series(repo.alerts_of_series(session, [s.id for s in series.values()], branch))
    affected: set[int] = set()
    for key in sorted(series):
        points = points_of.get(key)
        if points is None:
            continue
        row, metric = series[key], metrics[key[0]]
        detector = settings.detector(metric.name)
        findings = _analyse_series(row, points, detector, Direction(metric.direction), full=work.full)
        summary.series += 1
        summary.change_points += len(row.change_points)
        if findings is None:
            continue
        template = _Template(project.id, row.suite, row.benchmark_id, row.metric_id, work.hardware_class_id)
        desired = [_desired(f, points.commit_ids) for f in findings]
        affected |= _reconcile(
            session,
            row.id,
            branch,
            desired,
            existing.get(row.id, []),
            points.position(),
            detector.min_points,
            template,
            summary,
        )
    summary.add(_regroup(session, ctx, project, affected))
    return summary


def _analyse_series(
    row: AnalysisSeries, points: SeriesPoints, settings: DetectorSettings, direction: Direction, *, full: bool
) -> list[Finding] | None:
    """Detect on the series and store its new state; None if nothing changed since last time."""
    settings_hash = _hash_settings(settings)
    n = len(points)
    unchanged = (
        not full
        and row.settings_hash == settings_hash
        and row.analysed_length <= n
        and row.prefix_hash == points.prefix_hash(row.analysed_length)
    )
    if unchanged and n == row.analysed_length:
        return None
    if unchanged:
        previous = [change_point_from_json(c) for c in row.change_points]
        change_points = update_change_points(
            points.samples, previous, row.analysed_length, settings, direction=direction
        )
    else:
        change_points = detect_change_points(points.samples, settings, direction=direction)
    row.change_points = [change_point_to_json(cp) for cp in change_points]
    row.analysed_length = n
    row.prefix_hash = points.prefix_hash(n)
    row.settings_hash = settings_hash
    row.analysed_at = utcnow()
    return series_findings(points.samples, change_points, settings, direction)


# ---------------------------------------------------------------------------------------------
# Pull requests and other branches


def merge_base(session: Session, project: Project, commit: Commit) -> Commit | None:
    """The default-branch commit a branch's commit is judged at: the merge-base its batch named
    (`context.merge_base`), else its first ancestor on the default branch."""
    hint = repo.merge_base_hint(session, commit.id)
    if hint:
        named = repo.commit_by_sha(session, project.id, hint)
        if named is not None:
            return named
    current, seen = commit, {commit.id}
    for _ in range(MAX_ANCESTRY_WALK):
        if not current.parents:
            return None
        parent = repo.commit_by_sha(session, project.id, str(current.parents[0]))
        if parent is None or parent.id in seen:
            return None
        if parent.branch == project.default_branch:
            return parent
        seen.add(parent.id)
        current = parent
    return None


def _run_commit(session: Session, ctx: AppContext, work: CommitWork) -> Summary:
    project = repo.project(session, work.project_id)
    commit = repo.commit(session, work.commit_id)
    common = (project.id, work.benchmark_id, work.hardware_class_id)
    own = ValueSlice(metric_ids=work.metric_ids, machine_id=work.machine_id, commit_id=commit.id)
    new_points = group_rows(history.series_values(session, *common, work.branch, own))
    summary = Summary()
    if not new_points:
        return summary
    series = _metric_series(session, project, work.hardware_class_id, work.benchmark_id, new_points)
    base = merge_base(session, project, commit)
    # The default branch up to the merge-base (without one: everything before the commit).
    upto = base.order_key if base else commit.order_key - 1
    metric_ids = tuple(sorted({m for m, _ in new_points}))
    before = ValueSlice(metric_ids=metric_ids, machine_id=work.machine_id, until_order_key=upto)
    baseline = group_rows(history.series_values(session, *common, project.default_branch, before))
    metrics = repo.metrics_by_id(session, {m for m, _ in new_points})
    settings = project_settings(session, project.id)
    existing = _by_series(
        repo.alerts_of_series(session, [s.id for s in series.values()], work.branch, commit.id)
    )
    affected: set[int] = set()
    for key in sorted(new_points):
        row, metric = series[key], metrics[key[0]]
        history_points = baseline.get(key)
        desired: list[_Desired] = []
        if history_points is not None:
            verdict = check_new_point(
                history_points.samples,
                new_points[key].samples[0],
                settings.detector(metric.name),
                direction=Direction(metric.direction),
            )
            finding = verdict_finding(verdict, 0, None)
            if finding is not None:
                last_good = base.id if base is not None else history_points.commit_ids[-1]
                desired.append(_Desired(finding, commit.id, last_good, None))
        summary.series += 1
        template = _Template(project.id, row.suite, row.benchmark_id, row.metric_id, work.hardware_class_id)
        affected |= _reconcile(
            session, row.id, work.branch, desired, existing.get(row.id, []), {}, 0, template, summary
        )
    summary.add(_regroup(session, ctx, project, affected))
    return summary


# ---------------------------------------------------------------------------------------------
# Failures


def _run_failures(session: Session, ctx: AppContext, work: FailureWork) -> Summary:
    project = repo.project(session, work.project_id)
    branch = project.default_branch
    key = {
        "kind": "failures",
        "project": project.id,
        "branch": branch,
        "hardware_class": work.hardware_class_id,
        "suite": work.suite,
        "benchmark": work.benchmark_id,
    }
    row: dict[str, Any] = {
        "project_id": project.id,
        "kind": "failures",
        "key_hash": stable_hash(key),
        "branch": branch,
        "hardware_class_id": work.hardware_class_id,
        "suite": work.suite,
        "benchmark_id": work.benchmark_id,
    }
    series = repo.ensure_series(session, [row])[str(row["key_hash"])]
    outcomes = history.benchmark_outcomes(
        session, project.id, work.hardware_class_id, branch, work.suite, work.benchmark_id
    )
    commits = [c for c, _, _ in outcomes]
    settings = project_settings(session, project.id).failures()
    findings = failure_findings([failed for _, _, failed in outcomes], settings)
    series.analysed_length = len(commits)
    series.settings_hash = _hash_settings(settings)
    series.analysed_at = utcnow()
    summary = Summary(series=1)
    template = _Template(project.id, work.suite, work.benchmark_id, None, work.hardware_class_id)
    existing = repo.alerts_of_series(session, [series.id], branch)
    desired = [_desired(f, commits) for f in findings]
    affected = _reconcile(session, series.id, branch, desired, existing, {}, 0, template, summary)
    summary.add(_regroup(session, ctx, project, affected))
    return summary


# ---------------------------------------------------------------------------------------------
# Fingerprint changes


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k in sorted(value):
            out.update(_flatten(value[k], f"{prefix}{k}."))
        return out
    if isinstance(value, list):
        return {prefix[:-1]: json.dumps(value, sort_keys=True)}
    return {prefix[:-1]: value}


def fingerprint_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """{dotted key: [before, after]} for every value that differs between two fingerprints."""
    old, new = _flatten(before), _flatten(after)
    return {k: [old.get(k), new.get(k)] for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}


def _describe(changes: dict[str, list[Any]], limit: int = 8) -> str:
    parts = [
        f"{k}: {'(none)' if a is None else a} -> {'(none)' if b is None else b}"
        for k, (a, b) in changes.items()
    ]
    if len(parts) > limit:
        parts = [*parts[:limit], f"and {len(parts) - limit} more"]
    return "; ".join(parts)


def _run_environment(session: Session, work: EnvironmentWork) -> Summary:
    """An annotation where each new fingerprint of the class first reported, after another."""
    project = repo.project(session, work.project_id)
    branch = project.default_branch
    first_seen: dict[int, tuple[int, int | None]] = {}  # machine -> (commit, machine seen before it)
    last: int | None = None
    for commit_id, _, machine_id in repo.machine_appearances(
        session, project.id, branch, work.hardware_class_id
    ):
        if machine_id not in first_seen:
            first_seen[machine_id] = (commit_id, last)
        last = machine_id
    replaced = {m: (c, before) for m, (c, before) in first_seen.items() if before is not None}
    summary = Summary()
    if not replaced:
        return summary
    machines = repo.machines_by_id(
        session, set(replaced) | {b for _, b in replaced.values() if b is not None}
    )
    hardware = repo.hardware_names(session, [work.hardware_class_id])[work.hardware_class_id]
    for machine_id, (commit_id, before_id) in sorted(replaced.items()):
        assert before_id is not None
        old, new = machines[before_id], machines[machine_id]
        changes = fingerprint_changes(old.fingerprint, new.fingerprint)
        text = f"machine fingerprint changed on {hardware}: " + (
            _describe(changes) or f"{old.fingerprint_hash[:12]} -> {new.fingerprint_hash[:12]}"
        )
        details = {"before": old.fingerprint_hash, "after": new.fingerprint_hash, "changes": changes}
        key = f"environment_change:{project.id}:{work.hardware_class_id}:{machine_id}"
        note = repo.annotation_by_key(session, key)
        if note is None:
            repo.add(
                session,
                Annotation(
                    project_id=project.id,
                    commit_id=commit_id,
                    hardware_class_id=work.hardware_class_id,
                    machine_id=machine_id,
                    kind="environment_change",
                    text=text,
                    details=details,
                    dedupe_key=key,
                ),
            )
            summary.annotations += 1
        elif (note.commit_id, note.text, note.details) != (commit_id, text, details):
            note.commit_id, note.text, note.details = commit_id, text, details
            summary.annotations += 1
    return summary


# ---------------------------------------------------------------------------------------------
# Reconciling findings with stored alerts


@dataclass(frozen=True)
class _Desired:
    finding: Finding
    first_bad: int
    last_good: int | None
    fixed_by: int | None


def _desired(finding: Finding, commits: Sequence[int]) -> _Desired:
    return _Desired(
        finding,
        commits[finding.index],
        None if finding.previous is None else commits[finding.previous],
        None if finding.fixed_at is None else commits[finding.fixed_at],
    )


def _by_series(alerts: Iterable[Alert]) -> dict[int, list[Alert]]:
    out: dict[int, list[Alert]] = defaultdict(list)
    for a in alerts:
        out[a.series_id].append(a)
    return out


def _values(d: _Desired, template: _Template) -> dict[str, Any]:
    f = d.finding
    values: dict[str, Any] = {
        "detector": f.detector,
        "suite": template.suite,
        "benchmark_id": template.benchmark_id,
        "metric_id": template.metric_id,
        "hardware_class_id": template.hardware_class_id,
        "first_bad_commit_id": d.first_bad,
        "last_good_commit_id": d.last_good,
        "relative_change": f.relative_change,
        "ci_low": f.ci_low,
        "ci_high": f.ci_high,
        "p_value": f.p_value,
        "before_value": f.before_value,
        "after_value": f.after_value,
        "failure_rate": f.failure_rate,
        "failure_window": f.failure_window,
    }
    if d.fixed_by is not None:
        values["fixed_by_commit_id"] = d.fixed_by
    return values


def _fix_note(kind: str) -> str:
    if kind == "flaky":
        return "no failure in the last runs"
    return "it passes again" if kind == "starts_failing" else "a later change point restores the level"


def _reconcile(
    session: Session,
    series_id: int,
    branch: str,
    desired: Sequence[_Desired],
    existing: Sequence[Alert],
    position: dict[int, int],
    tolerance: int,
    template: _Template,
    summary: Summary,
) -> set[int]:
    """Make a series' stored alerts what the analysis found; returns the suspect commits whose
    incidents may have changed.

    A finding keeps the alert of its kind at its commit; failing that, the nearest one of its
    kind within `tolerance` commits (a change point that moved as more commits came in, or the
    fast check's alert a change point now confirms), so triage decisions stay with it. Stored
    alerts nothing found any more are withdrawn, unless a person triaged them.
    """
    by_key = {(a.kind, a.first_bad_commit_id): a for a in existing}
    pairs: list[tuple[Alert, _Desired]] = []
    fresh: list[_Desired] = []
    for d in desired:
        found = by_key.pop((d.finding.kind, d.first_bad), None)
        if found is not None:
            pairs.append((found, d))
        else:
            fresh.append(d)
    leftover = sorted(by_key.values(), key=lambda a: a.id)
    affected: set[int] = set()
    for d in fresh:
        here = position.get(d.first_bad)
        near = [
            a
            for a in leftover
            if a.kind == d.finding.kind
            and here is not None
            and a.first_bad_commit_id in position
            and abs(position[a.first_bad_commit_id] - here) <= tolerance
        ]
        if near:
            chosen = min(near, key=lambda a: (abs(position[a.first_bad_commit_id or 0] - (here or 0)), a.id))
            leftover.remove(chosen)
            pairs.append((chosen, d))
            continue
        alert = Alert(
            project_id=template.project_id,
            series_id=series_id,
            kind=d.finding.kind,
            branch=branch,
            state="new",
            **_values(d, template),
        )
        repo.add(session, alert)
        summary.alerts_created += 1
        affected.add(d.first_bad)
        if d.fixed_by is not None:
            _transition(session, alert, "fixed", ANALYSIS_ACTOR, note=_fix_note(alert.kind))
    for alert, d in pairs:
        old_commit = alert.first_bad_commit_id
        changed = False
        for name, value in _values(d, template).items():
            if getattr(alert, name) != value:
                setattr(alert, name, value)
                changed = True
        if changed:
            summary.alerts_updated += 1
            affected |= {c for c in (old_commit, d.first_bad) if c is not None}
        if d.fixed_by is not None and alert.state in OPEN_STATES:
            _transition(session, alert, "fixed", ANALYSIS_ACTOR, note=_fix_note(alert.kind))
            affected.add(d.first_bad)
    kept = repo.triaged_by_people(session, [a.id for a in leftover])
    for alert in leftover:
        if alert.id in kept:
            continue
        if alert.first_bad_commit_id is not None:
            affected.add(alert.first_bad_commit_id)
        repo.delete_row(session, alert)
        summary.alerts_withdrawn += 1
    repo.flush(session)  # the incidents are regrouped by querying the alerts' commits
    return affected


def _transition(
    session: Session,
    subject: Alert | Incident,
    to: str,
    actor: str,
    *,
    token_id: int | None = None,
    note: str | None = None,
) -> None:
    """Set a state and record who did it, from what, and why."""
    event = TriageEvent(actor=actor, token_id=token_id, from_state=subject.state, to_state=to, note=note)
    if isinstance(subject, Alert):
        event.alert_id = subject.id
    else:
        event.incident_id = subject.id
    subject.state = to
    repo.add(session, event)


# ---------------------------------------------------------------------------------------------
# Incidents


def _incident_summary(alerts: Sequence[Alert], hardware: dict[int, str]) -> dict[str, Any]:
    counts: dict[str, int] = defaultdict(int)
    for a in alerts:
        counts[a.kind] += 1
    changes = [a.relative_change for a in alerts if a.relative_change is not None]
    return {
        "kinds": dict(sorted(counts.items())),
        "hardware_classes": sorted({hardware[a.hardware_class_id] for a in alerts if a.hardware_class_id}),
        "suites": sorted({a.suite for a in alerts}),
        "branches": sorted({a.branch for a in alerts}),
        "largest_change": max(changes, key=abs) if changes else None,
    }


PLURALS = {
    "regression": "regressions",
    "improvement": "improvements",
    "starts_failing": "starting failures",
    "flaky": "flaky",
    "recovered": "recovered",
}


def _incident_title(summary: dict[str, Any], sha: str) -> str:
    kinds = ", ".join(
        f"{n} {kind.replace('_', ' ') if n == 1 else PLURALS[kind]}" for kind, n in summary["kinds"].items()
    )
    classes = ", ".join(summary["hardware_classes"])
    return f"{kinds} at {sha[:10]}" + (f" on {classes}" if classes else "")


def _settle(
    session: Session, incident: Incident, alerts: Sequence[Alert], actor: str, token_id: int | None = None
) -> None:
    """An incident is fixed once every alert in it that wants a fix is fixed, and opens again when
    one of them is new again."""
    needing = [a for a in alerts if a.kind in NEEDS_FIX]
    if not needing:
        return
    if all(a.state == "fixed" for a in needing):
        if incident.state in OPEN_STATES:
            _transition(
                session,
                incident,
                "fixed",
                actor,
                token_id=token_id,
                note="every regression and failure in it is fixed",
            )
    elif incident.state == "fixed" and any(a.state == "new" for a in needing):
        _transition(session, incident, "new", actor, token_id=token_id, note="an alert in it is new")


def _regroup(session: Session, ctx: AppContext, project: Project, commit_ids: set[int]) -> Summary:
    """Bring the incidents of these suspect commits in line with their alerts."""
    summary = Summary()
    for commit_id in sorted(commit_ids):
        alerts = repo.alerts_at(session, project.id, commit_id)
        if not alerts:
            gone = repo.incident_at(session, project.id, commit_id)
            if gone is not None and not repo.incident_triaged_by_people(session, gone.id):
                repo.delete_row(session, gone)
                summary.incidents_changed += 1
            continue
        incident, created = repo.create_incident(session, project.id, commit_id)
        before = (incident.state, incident.summary, incident.last_good_commit_id)
        for a in alerts:
            if a.incident_id != incident.id:
                a.incident_id = incident.id
        facts = repo.commit_facts(
            session, {commit_id} | {a.last_good_commit_id for a in alerts if a.last_good_commit_id}
        )
        starts = [a.last_good_commit_id for a in alerts if a.last_good_commit_id in facts]
        # The narrowest range: the culprit lies in every alert's range.
        last_good = max(starts, key=lambda c: (facts[c][1], c)) if starts else None
        if incident.last_good_commit_id != last_good:
            incident.last_good_commit_id = last_good
        hardware = repo.hardware_names(session, {a.hardware_class_id for a in alerts if a.hardware_class_id})
        new_summary = _incident_summary(alerts, hardware)
        if incident.summary != new_summary:
            incident.summary = new_summary
            incident.title = _incident_title(new_summary, facts[commit_id][0])
        _settle(session, incident, alerts, ANALYSIS_ACTOR)
        if created:
            summary.incidents_created += 1
            incident_changed(session, ctx, incident.id)
        elif before != (incident.state, incident.summary, incident.last_good_commit_id):
            summary.incidents_changed += 1
            incident_changed(session, ctx, incident.id)
    return summary


def incident_changed(session: Session, ctx: AppContext, incident_id: int) -> None:
    """Send the incident hooks that exist (see INCIDENT_HOOKS) once this transaction commits."""
    for name in INCIDENT_HOOKS:
        if name in TASKS:
            enqueue_after_commit(session, ctx, name, incident_id)


# ---------------------------------------------------------------------------------------------
# Triage


def _incident(session: Session, incident_id: int) -> Incident:
    incident = repo.lock_incident(session, incident_id)
    if incident is None:
        raise NotFound(f"no incident {incident_id}")
    return incident


def set_incident_state(
    session: Session, ctx: AppContext, incident_id: int, body: StateIn, actor: str, token_id: int | None
) -> dict[str, Any]:
    """A person's decision on an incident; its alerts follow, except those already fixed."""
    incident = _incident(session, incident_id)
    if body.state == incident.state and not body.note:
        return incident_detail(session, incident_id)
    changed = body.state != incident.state
    _transition(session, incident, body.state, actor, token_id=token_id, note=body.note)
    if changed:
        for alert in repo.alerts_of_incident(session, incident.id):
            if alert.state not in (body.state, "fixed"):
                _transition(session, alert, body.state, actor, token_id=token_id, note=body.note)
        incident_changed(session, ctx, incident.id)
    return incident_detail(session, incident_id)


def set_alert_state(
    session: Session, ctx: AppContext, alert_id: int, body: StateIn, actor: str, token_id: int | None
) -> dict[str, Any]:
    """A person's decision on one alert; its incident is fixed once all that want a fix are."""
    alert = repo.lock_alert(session, alert_id)
    if alert is None:
        raise NotFound(f"no alert {alert_id}")
    if body.state == alert.state and not body.note:
        return alert_detail(session, alert_id)
    _transition(session, alert, body.state, actor, token_id=token_id, note=body.note)
    if alert.incident_id is not None:
        incident = _incident(session, alert.incident_id)
        before = incident.state
        _settle(session, incident, repo.alerts_of_incident(session, incident.id), actor, token_id)
        if incident.state != before:
            incident_changed(session, ctx, incident.id)
    return alert_detail(session, alert_id)


# ---------------------------------------------------------------------------------------------
# Reads


def alerts_listing(filters: AlertFilters) -> Listing:
    return repo.alerts_listing(filters)


def incidents_listing(filters: IncidentFilters) -> Listing:
    return repo.incidents_listing(filters)


def annotations_listing(filters: AnnotationFilters) -> Listing:
    return repo.annotations_listing(filters)


def alert_detail(session: Session, alert_id: int) -> dict[str, Any]:
    rows = repo.alert_rows(session, alert_id=alert_id)
    if not rows:
        raise NotFound(f"no alert {alert_id}")
    return {"alert": rows[0], "history": repo.events(session, None, [alert_id])}


def incident_detail(session: Session, incident_id: int) -> dict[str, Any]:
    """An incident with its alerts, its triage history (and its alerts') and the known commits
    of its suspect range."""
    row = repo.incident_row(session, incident_id)
    if row is None:
        raise NotFound(f"no incident {incident_id}")
    incident = repo.get_incident(session, incident_id)
    assert incident is not None
    alerts = repo.alert_rows(session, incident_id=incident_id)
    return {
        "incident": row,
        "alerts": alerts,
        "history": repo.events(session, incident_id, [a["id"] for a in alerts]),
        "suspect_commits": _suspect_commits(session, incident),
    }


def _suspect_commits(session: Session, incident: Incident, limit: int = 200) -> list[dict[str, Any]]:
    """The known commits after the last good one up to the suspect, oldest first: on the default
    branch its first-parent history; on another branch, the suspect's own first parents back to
    its merge-base."""
    project = repo.project(session, incident.project_id)
    suspect = repo.commit(session, incident.commit_id)
    start = repo.commit(session, incident.last_good_commit_id) if incident.last_good_commit_id else None
    if suspect.branch in (None, project.default_branch):
        after = start.order_key if start is not None else suspect.order_key - 1
        known = repo.commits_between(
            session, project.id, project.default_branch, after, suspect.order_key, limit
        )
        return [_commit_summary(c) for c in known]
    chain, current = [suspect], suspect
    while start is not None and current.parents and len(chain) < limit:
        parent = repo.commit_by_sha(session, project.id, str(current.parents[0]))
        if parent is None or parent.id == start.id or parent in chain:
            break
        chain.append(parent)
        current = parent
    return [_commit_summary(c) for c in reversed(chain)]


def _commit_summary(c: Commit) -> dict[str, Any]:
    return {
        "sha": c.sha,
        "author": c.author,
        "message": (c.message or "").split("\n", 1)[0],
        "order": c.order_key,
    }
