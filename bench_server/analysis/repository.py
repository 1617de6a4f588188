"""SQL of the analysis: its series rows and settings, what a batch touched, alerts, incidents,
triage events, annotations, and the listings. Result rows in first-parent order come from
`history.service` (the one place commits are ordered)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from bench_server.analysis.schemas import AlertFilters, AnnotationFilters, IncidentFilters
from bench_server.kit.paging import Listing
from bench_server.kit.sql import insert_ignoring_conflicts
from bench_server.models import (
    FAILURE_KINDS,
    Alert,
    AnalysedBatch,
    AnalysisSeries,
    AnalysisSettings,
    Annotation,
    Benchmark,
    Commit,
    Failure,
    HardwareClass,
    Incident,
    IngestBatch,
    Machine,
    Metric,
    Project,
    Result,
    TriageEvent,
)
from bench_server.models.base import utcnow

ANALYSIS_ACTOR = "analysis"

# ---------------------------------------------------------------------------------------------
# Catalog rows the analysis reads


def project(session: Session, project_id: int) -> Project:
    return session.get_one(Project, project_id)


def all_project_ids(session: Session, slug: str | None = None) -> list[int]:
    query = select(Project.id).order_by(Project.id)
    if slug is not None:
        query = query.where(Project.slug == slug)
    return list(session.scalars(query))


def benchmark(session: Session, benchmark_id: int) -> Benchmark:
    return session.get_one(Benchmark, benchmark_id)


def metrics_by_id(session: Session, ids: Iterable[int]) -> dict[int, Metric]:
    return {m.id: m for m in session.scalars(select(Metric).where(Metric.id.in_(list(ids))))}


def machines_by_id(session: Session, ids: Iterable[int]) -> dict[int, Machine]:
    return {m.id: m for m in session.scalars(select(Machine).where(Machine.id.in_(list(ids))))}


def hardware_names(session: Session, ids: Iterable[int]) -> dict[int, str]:
    rows = session.execute(
        select(HardwareClass.id, HardwareClass.name).where(HardwareClass.id.in_(list(ids)))
    )
    return {i: n for i, n in rows}


def commit(session: Session, commit_id: int) -> Commit:
    return session.get_one(Commit, commit_id)


def commit_by_sha(session: Session, project_id: int, sha: str) -> Commit | None:
    return session.scalars(
        select(Commit).where(Commit.project_id == project_id, Commit.sha == sha.lower())
    ).one_or_none()


def commit_facts(session: Session, ids: Iterable[int]) -> dict[int, tuple[str, int]]:
    """(sha, order key) by commit id."""
    rows = session.execute(select(Commit.id, Commit.sha, Commit.order_key).where(Commit.id.in_(list(ids))))
    return {i: (sha, int(order)) for i, sha, order in rows}


# ---------------------------------------------------------------------------------------------
# What a batch touched, and what a project has


def batch(session: Session, batch_id: int) -> tuple[IngestBatch, int] | None:
    """The batch and its machine's hardware class."""
    row = session.execute(
        select(IngestBatch, Machine.hardware_class_id)
        .join(Machine, Machine.id == IngestBatch.machine_id)
        .where(IngestBatch.id == batch_id)
    ).one_or_none()
    return None if row is None else (row[0], int(row[1]))


def batch_result_keys(session: Session, batch_id: int) -> list[tuple[int, str, int]]:
    """(benchmark id, suite, metric id) of the batch's results."""
    rows = session.execute(
        select(Result.benchmark_id, Benchmark.suite, Result.metric_id)
        .distinct()
        .join(Benchmark, Benchmark.id == Result.benchmark_id)
        .where(Result.batch_id == batch_id)
    )
    return [(int(b), s, int(m)) for b, s, m in rows]


def batch_failure_keys(session: Session, batch_id: int) -> list[tuple[str, int | None]]:
    rows = session.execute(
        select(Failure.suite, Failure.benchmark_id).distinct().where(Failure.batch_id == batch_id)
    )
    return [(s, b) for s, b in rows]


def failure_keys(
    session: Session, project_id: int, branch: str, hardware_class_id: int | None = None
) -> list[tuple[int, str, int | None]]:
    """(hardware class, suite, benchmark) of every failure on a branch."""
    query = (
        select(Failure.hardware_class_id, Failure.suite, Failure.benchmark_id)
        .distinct()
        .where(Failure.project_id == project_id, Failure.branch == branch)
    )
    if hardware_class_id is not None:
        query = query.where(Failure.hardware_class_id == hardware_class_id)
    return [(int(h), s, b) for h, s, b in session.execute(query)]


def metric_groups(session: Session, project_id: int, branch: str) -> list[tuple[int, int]]:
    """(hardware class, benchmark) of every series with results on a branch."""
    rows = session.execute(
        select(Result.hardware_class_id, Result.benchmark_id)
        .distinct()
        .where(Result.project_id == project_id, Result.branch == branch)
        .order_by(Result.hardware_class_id, Result.benchmark_id)
    )
    return [(int(h), int(b)) for h, b in rows]


def group_keys(
    session: Session, project_id: int, branch: str, hardware_class_id: int, benchmark_id: int
) -> list[tuple[int, int]]:
    """(metric, machine) of every series of one benchmark on one hardware class."""
    rows = session.execute(
        select(Result.metric_id, Result.machine_id)
        .distinct()
        .where(
            Result.project_id == project_id,
            Result.benchmark_id == benchmark_id,
            Result.hardware_class_id == hardware_class_id,
            Result.branch == branch,
        )
    )
    return [(int(m), int(machine)) for m, machine in rows]


def other_branch_checks(session: Session, project_id: int, default_branch: str) -> list[tuple[Any, ...]]:
    """(commit, branch, hardware class, benchmark, machine) with results off the default branch."""
    rows = session.execute(
        select(
            Result.commit_id, Result.branch, Result.hardware_class_id, Result.benchmark_id, Result.machine_id
        )
        .distinct()
        .where(Result.project_id == project_id, Result.branch != default_branch)
        .order_by(Result.commit_id, Result.hardware_class_id, Result.benchmark_id, Result.machine_id)
    )
    return [tuple(r) for r in rows]


def hardware_classes_with_batches(session: Session, project_id: int, branch: str) -> list[int]:
    rows = session.scalars(
        select(Machine.hardware_class_id)
        .distinct()
        .join(IngestBatch, IngestBatch.machine_id == Machine.id)
        .where(IngestBatch.project_id == project_id, IngestBatch.branch == branch)
        .order_by(Machine.hardware_class_id)
    )
    return [int(h) for h in rows]


def merge_base_hint(session: Session, commit_id: int) -> str | None:
    """The merge-base a batch of this commit named in its context (`context.merge_base`)."""
    for context in session.scalars(
        select(IngestBatch.context).where(IngestBatch.commit_id == commit_id).order_by(IngestBatch.id)
    ):
        value = (context or {}).get("merge_base")
        if isinstance(value, str) and value:
            return value
    return None


def machine_appearances(
    session: Session, project_id: int, branch: str, hardware_class_id: int
) -> Sequence[Any]:
    """(commit id, order key, machine id) of the batches of one hardware class on a branch, in
    first-parent order."""
    return session.execute(
        select(IngestBatch.commit_id, Commit.order_key, IngestBatch.machine_id)
        .distinct()
        .join(Commit, Commit.id == IngestBatch.commit_id)
        .join(Machine, Machine.id == IngestBatch.machine_id)
        .where(
            IngestBatch.project_id == project_id,
            IngestBatch.branch == branch,
            Machine.hardware_class_id == hardware_class_id,
        )
        .order_by(Commit.order_key, IngestBatch.commit_id, IngestBatch.machine_id)
    ).all()


def machine_seen_before(session: Session, batch: IngestBatch) -> bool:
    """Whether an earlier batch of this project and branch came from the same machine (earlier
    by id: later ones may be stored by the time this batch is analysed)."""
    return (
        session.scalars(
            select(IngestBatch.id)
            .where(
                IngestBatch.project_id == batch.project_id,
                IngestBatch.branch == batch.branch,
                IngestBatch.machine_id == batch.machine_id,
                IngestBatch.id < batch.id,
            )
            .limit(1)
        ).first()
        is not None
    )


# ---------------------------------------------------------------------------------------------
# Series rows and settings


def ensure_series(session: Session, rows: Sequence[dict[str, Any]]) -> dict[str, AnalysisSeries]:
    """Get or create series rows by key hash and lock them (in id order, so two analyses of
    overlapping series wait for each other instead of deadlocking). On SQLite the INSERT
    takes the database's write lock first, so what follows reads the latest data."""
    now = utcnow()
    insert_ignoring_conflicts(
        session,
        AnalysisSeries.__table__,  # type: ignore[arg-type]
        [{"analysed_length": 0, "change_points": [], "created_at": now, **r} for r in rows],
        ["key_hash"],
    )
    hashes = [r["key_hash"] for r in rows]
    found: dict[str, AnalysisSeries] = {}
    for start in range(0, len(hashes), 500):
        chunk = hashes[start : start + 500]
        for s in session.scalars(
            select(AnalysisSeries)
            .where(AnalysisSeries.key_hash.in_(chunk))
            .order_by(AnalysisSeries.id)
            .with_for_update()
        ):
            found[s.key_hash] = s
    return found


def settings_rows(session: Session, project_id: int) -> dict[str, dict[str, Any]]:
    rows = session.scalars(select(AnalysisSettings).where(AnalysisSettings.project_id == project_id))
    return {r.metric: dict(r.settings) for r in rows}


def replace_settings(session: Session, project_id: int, settings: dict[str, dict[str, Any]]) -> None:
    session.execute(delete(AnalysisSettings).where(AnalysisSettings.project_id == project_id))
    session.add_all(
        AnalysisSettings(project_id=project_id, metric=metric, settings=values)
        for metric, values in sorted(settings.items())
    )
    session.flush()


# ---------------------------------------------------------------------------------------------
# Alerts, incidents, triage events


def alerts_of_series(
    session: Session, series_ids: Sequence[int], branch: str, commit_id: int | None = None
) -> list[Alert]:
    query = select(Alert).where(Alert.series_id.in_(list(series_ids)), Alert.branch == branch)
    if commit_id is not None:
        query = query.where(Alert.first_bad_commit_id == commit_id)
    return list(session.scalars(query.order_by(Alert.id)))


def add(session: Session, row: Alert | Incident | TriageEvent | Annotation) -> None:
    session.add(row)
    session.flush()


def flush(session: Session) -> None:
    """Write pending changes, so the queries that follow see them (sessions do not autoflush)."""
    session.flush()


def delete_row(session: Session, row: Alert | Incident) -> None:
    session.delete(row)
    session.flush()


def triaged_by_people(session: Session, alert_ids: Sequence[int]) -> set[int]:
    """The alerts whose state someone other than the analysis changed or noted."""
    if not alert_ids:
        return set()
    rows = session.scalars(
        select(TriageEvent.alert_id)
        .distinct()
        .where(TriageEvent.alert_id.in_(list(alert_ids)), TriageEvent.actor != ANALYSIS_ACTOR)
    )
    return {int(a) for a in rows if a is not None}


def incident_triaged_by_people(session: Session, incident_id: int) -> bool:
    return (
        session.scalars(
            select(TriageEvent.id)
            .where(TriageEvent.incident_id == incident_id, TriageEvent.actor != ANALYSIS_ACTOR)
            .limit(1)
        ).first()
        is not None
    )


def alerts_at(session: Session, project_id: int, commit_id: int) -> list[Alert]:
    return list(
        session.scalars(
            select(Alert)
            .where(Alert.project_id == project_id, Alert.first_bad_commit_id == commit_id)
            .order_by(Alert.id)
        )
    )


def alerts_of_incident(session: Session, incident_id: int) -> list[Alert]:
    return list(session.scalars(select(Alert).where(Alert.incident_id == incident_id).order_by(Alert.id)))


def incident_at(session: Session, project_id: int, commit_id: int) -> Incident | None:
    return session.scalars(
        select(Incident)
        .where(Incident.project_id == project_id, Incident.commit_id == commit_id)
        .with_for_update()
    ).one_or_none()


def create_incident(session: Session, project_id: int, commit_id: int) -> tuple[Incident, bool]:
    """The incident of a commit, created if there is none (safe against a concurrent twin);
    True if this call created it."""
    now = utcnow()
    before = incident_at(session, project_id, commit_id)
    if before is not None:
        return before, False
    insert_ignoring_conflicts(
        session,
        Incident.__table__,  # type: ignore[arg-type]
        [
            {
                "project_id": project_id,
                "commit_id": commit_id,
                "state": "new",
                "summary": {},
                "created_at": now,
                "updated_at": now,
            }
        ],
        ["project_id", "commit_id"],
    )
    created = incident_at(session, project_id, commit_id)
    assert created is not None
    return created, True


def get_incident(session: Session, incident_id: int) -> Incident | None:
    return session.get(Incident, incident_id)


def lock_incident(session: Session, incident_id: int) -> Incident | None:
    return session.scalars(select(Incident).where(Incident.id == incident_id).with_for_update()).one_or_none()


def lock_alert(session: Session, alert_id: int) -> Alert | None:
    return session.scalars(select(Alert).where(Alert.id == alert_id).with_for_update()).one_or_none()


def events(session: Session, incident_id: int | None, alert_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The triage history of an incident and its alerts (or of alerts alone), oldest first."""
    conditions: list[ColumnElement[bool]] = []
    if incident_id is not None:
        conditions.append(TriageEvent.incident_id == incident_id)
    if alert_ids:
        conditions.append(TriageEvent.alert_id.in_(list(alert_ids)))
    if not conditions:
        return []
    rows = session.scalars(select(TriageEvent).where(or_(*conditions)).order_by(TriageEvent.id))
    return [
        {
            "id": e.id,
            "incident_id": e.incident_id,
            "alert_id": e.alert_id,
            "actor": e.actor,
            "from_state": e.from_state,
            "to_state": e.to_state,
            "note": e.note,
            "created_at": e.created_at,
        }
        for e in rows
    ]


def commits_between(
    session: Session, project_id: int, branch: str, after_order: int, until_order: int, limit: int
) -> list[Commit]:
    """Known commits of a branch with after_order < order key <= until_order, in first-parent order."""
    return list(
        session.scalars(
            select(Commit)
            .where(
                Commit.project_id == project_id,
                Commit.branch == branch,
                Commit.order_key > after_order,
                Commit.order_key <= until_order,
            )
            .order_by(Commit.order_key, Commit.id)
            .limit(limit)
        )
    )


def totals(session: Session, project_ids: Sequence[int]) -> dict[str, dict[str, int]]:
    """Alerts by kind and state, incidents by state, of these projects."""
    alerts = session.execute(
        select(Alert.kind, Alert.state, func.count())
        .where(Alert.project_id.in_(list(project_ids)))
        .group_by(Alert.kind, Alert.state)
    )
    incidents = session.execute(
        select(Incident.state, func.count())
        .where(Incident.project_id.in_(list(project_ids)))
        .group_by(Incident.state)
    )
    return {
        "alerts": {f"{kind} ({state})": int(n) for kind, state, n in sorted(alerts)},
        "incidents": {str(state): int(n) for state, n in sorted(incidents)},
    }


# ---------------------------------------------------------------------------------------------
# Annotations and analysed batches


def annotation_by_key(session: Session, dedupe_key: str) -> Annotation | None:
    return session.scalars(select(Annotation).where(Annotation.dedupe_key == dedupe_key)).one_or_none()


def mark_analysed(session: Session, batch_id: int) -> None:
    insert_ignoring_conflicts(
        session,
        AnalysedBatch.__table__,  # type: ignore[arg-type]
        [{"batch_id": batch_id, "analysed_at": utcnow()}],
        ["batch_id"],
    )


def unanalysed_batches(
    session: Session, created_after: datetime, created_before: datetime, limit: int
) -> list[int]:
    return list(
        session.scalars(
            select(IngestBatch.id)
            .where(
                IngestBatch.created_at >= created_after,
                IngestBatch.created_at < created_before,
                ~exists().where(AnalysedBatch.batch_id == IngestBatch.id),
            )
            .order_by(IngestBatch.id)
            .limit(limit)
        )
    )


# ---------------------------------------------------------------------------------------------
# Listings

ALERT_COLUMNS = [
    "id",
    "project",
    "incident_id",
    "kind",
    "state",
    "detector",
    "branch",
    "suite",
    "benchmark",
    "benchmark_id",
    "params",
    "metric",
    "unit",
    "direction",
    "hardware_class",
    "machine",
    "commit",
    "previous_commit",
    "fixed_by",
    "relative_change",
    "ci_low",
    "ci_high",
    "p_value",
    "before_value",
    "after_value",
    "failure_rate",
    "failure_window",
    "created_at",
    "updated_at",
]
INCIDENT_COLUMNS = [
    "id",
    "project",
    "commit",
    "previous_commit",
    "state",
    "title",
    "summary",
    "alerts",
    "created_at",
    "updated_at",
]
ANNOTATION_COLUMNS = [
    "id",
    "project",
    "commit",
    "hardware_class",
    "machine",
    "kind",
    "text",
    "details",
    "created_at",
]


def _alert_query() -> tuple[Select[*tuple[Any, ...]], Any]:
    """The listing's query, and the alias of the suspect commit (to filter on its sha)."""
    first_bad, last_good, fixed_by = aliased(Commit), aliased(Commit), aliased(Commit)
    query: Select[*tuple[Any, ...]] = (
        select(
            Alert.id,
            Project.slug,
            Alert.incident_id,
            Alert.kind,
            Alert.state,
            Alert.detector,
            Alert.branch,
            Alert.suite,
            Benchmark.name,
            Alert.benchmark_id,
            Benchmark.params,
            Metric.name,
            Metric.unit,
            Metric.direction,
            HardwareClass.name,
            AnalysisSeries.fingerprint_hash,
            first_bad.sha,
            last_good.sha,
            fixed_by.sha,
            Alert.relative_change,
            Alert.ci_low,
            Alert.ci_high,
            Alert.p_value,
            Alert.before_value,
            Alert.after_value,
            Alert.failure_rate,
            Alert.failure_window,
            Alert.created_at,
            Alert.updated_at,
        )
        .join(Project, Project.id == Alert.project_id)
        .join(AnalysisSeries, AnalysisSeries.id == Alert.series_id)
        .outerjoin(Benchmark, Benchmark.id == Alert.benchmark_id)
        .outerjoin(Metric, Metric.id == Alert.metric_id)
        .outerjoin(HardwareClass, HardwareClass.id == Alert.hardware_class_id)
        .outerjoin(first_bad, first_bad.id == Alert.first_bad_commit_id)
        .outerjoin(last_good, last_good.id == Alert.last_good_commit_id)
        .outerjoin(fixed_by, fixed_by.id == Alert.fixed_by_commit_id)
    )
    return query, first_bad


def _alert_row(r: Any) -> dict[str, Any]:
    row = dict(zip(ALERT_COLUMNS, r, strict=True))
    if row["machine"]:
        row["machine"] = row["machine"][:16]
    return row


def _kinds(kind: str) -> list[str]:
    return list(FAILURE_KINDS) if kind == "failure" else [kind]


def alerts_listing(filters: AlertFilters) -> Listing:
    query, first_bad = _alert_query()
    if filters.project:
        query = query.where(Project.slug == filters.project)
    if filters.states:
        query = query.where(Alert.state.in_(filters.states))
    if filters.kind:
        query = query.where(Alert.kind.in_(_kinds(filters.kind)))
    if filters.hardware_class:
        query = query.where(HardwareClass.name == filters.hardware_class)
    if filters.suite:
        query = query.where(Alert.suite == filters.suite)
    if filters.benchmark:
        query = query.where(Benchmark.name == filters.benchmark)
    if filters.metric:
        query = query.where(Metric.name == filters.metric)
    if filters.branch:
        query = query.where(Alert.branch == filters.branch)
    if filters.incident_id is not None:
        query = query.where(Alert.incident_id == filters.incident_id)
    if filters.commit:
        query = query.where(first_bad.sha.startswith(filters.commit.lower()))
    return Listing("alerts", query, Alert.id, ALERT_COLUMNS, _alert_row)


def alert_rows(
    session: Session,
    *,
    commit_id: int | None = None,
    incident_id: int | None = None,
    alert_id: int | None = None,
) -> list[dict[str, Any]]:
    """Alerts as the listing shows them: of one commit (its suspect), one incident, or one id."""
    query, _ = _alert_query()
    if commit_id is not None:
        query = query.where(Alert.first_bad_commit_id == commit_id)
    if incident_id is not None:
        query = query.where(Alert.incident_id == incident_id)
    if alert_id is not None:
        query = query.where(Alert.id == alert_id)
    return [_alert_row(r) for r in session.execute(query.order_by(Alert.id))]


def _incident_query() -> tuple[Select[*tuple[Any, ...]], Any]:
    suspect, last_good = aliased(Commit), aliased(Commit)
    n_alerts = select(func.count()).where(Alert.incident_id == Incident.id).scalar_subquery()
    query: Select[*tuple[Any, ...]] = (
        select(
            Incident.id,
            Project.slug,
            suspect.sha,
            last_good.sha,
            Incident.state,
            Incident.title,
            Incident.summary,
            n_alerts,
            Incident.created_at,
            Incident.updated_at,
        )
        .join(Project, Project.id == Incident.project_id)
        .join(suspect, suspect.id == Incident.commit_id)
        .outerjoin(last_good, last_good.id == Incident.last_good_commit_id)
    )
    return query, suspect


def _incident_row(r: Any) -> dict[str, Any]:
    return dict(zip(INCIDENT_COLUMNS, r, strict=True))


def incidents_listing(filters: IncidentFilters) -> Listing:
    query, suspect = _incident_query()
    if filters.project:
        query = query.where(Project.slug == filters.project)
    if filters.states:
        query = query.where(Incident.state.in_(filters.states))
    if filters.commit:
        query = query.where(suspect.sha.startswith(filters.commit.lower()))
    alert_conditions: list[ColumnElement[bool]] = []
    if filters.kind:
        alert_conditions.append(Alert.kind.in_(_kinds(filters.kind)))
    if filters.suite:
        alert_conditions.append(Alert.suite == filters.suite)
    if filters.hardware_class:
        alert_conditions.append(
            Alert.hardware_class_id.in_(
                select(HardwareClass.id).where(HardwareClass.name == filters.hardware_class)
            )
        )
    if alert_conditions:
        query = query.where(exists().where(Alert.incident_id == Incident.id, *alert_conditions))
    return Listing("incidents", query, Incident.id, INCIDENT_COLUMNS, _incident_row)


def incident_row(session: Session, incident_id: int) -> dict[str, Any] | None:
    query, _ = _incident_query()
    r = session.execute(query.where(Incident.id == incident_id)).one_or_none()
    return None if r is None else _incident_row(r)


def annotations_listing(filters: AnnotationFilters) -> Listing:
    query = (
        select(
            Annotation.id,
            Project.slug,
            Commit.sha,
            HardwareClass.name,
            Machine.fingerprint_hash,
            Annotation.kind,
            Annotation.text,
            Annotation.details,
            Annotation.created_at,
        )
        .outerjoin(Project, Project.id == Annotation.project_id)
        .outerjoin(Commit, Commit.id == Annotation.commit_id)
        .outerjoin(HardwareClass, HardwareClass.id == Annotation.hardware_class_id)
        .outerjoin(Machine, Machine.id == Annotation.machine_id)
    )
    if filters.project:
        query = query.where(Project.slug == filters.project)
    if filters.hardware_class:
        query = query.where(HardwareClass.name == filters.hardware_class)
    if filters.kind:
        query = query.where(Annotation.kind == filters.kind)
    if filters.commit:
        query = query.where(Commit.sha.startswith(filters.commit.lower()))

    def to_row(r: Any) -> dict[str, Any]:
        row = dict(zip(ANNOTATION_COLUMNS, r, strict=True))
        if row["machine"]:
            row["machine"] = row["machine"][:16]
        return row

    return Listing("annotations", query, Annotation.id, ANNOTATION_COLUMNS, to_row)
