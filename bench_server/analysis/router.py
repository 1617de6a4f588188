"""`/api/v1/alerts`, `/incidents`, `/annotations` and `/projects/{slug}/analysis-settings`.

Reads are public; state changes need a `triage` (or `admin`) token, settings an `admin` one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from bench_server.analysis import service
from bench_server.analysis.schemas import (
    AlertFilters,
    AnnotationFilters,
    IncidentFilters,
    KindFilter,
    SettingsIn,
    StateIn,
    parse_states,
)
from bench_server.auth.deps import AdminAuth, TriageAuth
from bench_server.kit.deps import AppCtx, DbSession, ReadSession
from bench_server.kit.fastjson import json_response
from bench_server.kit.paging import Page, listing_response
from bench_server.kit.params import PathId, QueryId

router = APIRouter(tags=["analysis"])

StateQuery = Annotated[str | None, Query(description="one state or several, comma-separated")]
CommitQuery = Annotated[str | None, Query(description="the suspect commit's sha or a prefix of it")]
KindQuery = Annotated[KindFilter | None, Query(description="`failure` stands for its three kinds")]


def alert_filters(
    project: str | None = None,
    state: StateQuery = None,
    kind: KindQuery = None,
    hardware_class: str | None = None,
    suite: str | None = None,
    commit: CommitQuery = None,
    benchmark: str | None = None,
    metric: str | None = None,
    branch: str | None = None,
    incident_id: QueryId = None,
) -> AlertFilters:
    return AlertFilters(
        project,
        parse_states(state),
        kind,
        hardware_class,
        suite,
        commit,
        benchmark,
        metric,
        branch,
        incident_id,
    )


def incident_filters(
    project: str | None = None,
    state: StateQuery = None,
    kind: Annotated[KindFilter | None, Query(description="incidents with an alert of this kind")] = None,
    hardware_class: str | None = None,
    suite: str | None = None,
    commit: CommitQuery = None,
) -> IncidentFilters:
    return IncidentFilters(project, parse_states(state), kind, hardware_class, suite, commit)


@router.get("/alerts")
def list_alerts(
    request: Request,
    session: ReadSession,
    page: Page,
    filters: Annotated[AlertFilters, Depends(alert_filters)],
) -> Any:
    """Alerts (a series moved at a commit; a benchmark started failing, is flaky or recovered),
    newest first; `?format=csv` exports."""
    return listing_response(request, session, page, service.alerts_listing(filters))


@router.get("/alerts/{alert_id}")
def get_alert(alert_id: PathId, session: ReadSession) -> Any:
    """An alert with its triage history."""
    return json_response(service.alert_detail(session, alert_id))


@router.post("/alerts/{alert_id}/state")
def set_alert_state(alert_id: PathId, body: StateIn, session: DbSession, ctx: AppCtx, who: TriageAuth) -> Any:
    """Acknowledge, ignore, fix or reopen one alert, with a note (`triage` or `admin`)."""
    return json_response(service.set_alert_state(session, ctx, alert_id, body, who.name, who.token_id))


@router.get("/incidents")
def list_incidents(
    request: Request,
    session: ReadSession,
    page: Page,
    filters: Annotated[IncidentFilters, Depends(incident_filters)],
) -> Any:
    """Incidents: every alert of one suspect commit, across benchmarks and hardware; newest first."""
    return listing_response(request, session, page, service.incidents_listing(filters))


@router.get("/incidents/{incident_id}")
def get_incident(incident_id: PathId, session: ReadSession) -> Any:
    """An incident with its alerts, its history and the known commits of its suspect range."""
    return json_response(service.incident_detail(session, incident_id))


@router.post("/incidents/{incident_id}/state")
def set_incident_state(
    incident_id: PathId, body: StateIn, session: DbSession, ctx: AppCtx, who: TriageAuth
) -> Any:
    """Acknowledge, ignore, fix or reopen an incident and its alerts, with a note (`triage` or `admin`)."""
    return json_response(service.set_incident_state(session, ctx, incident_id, body, who.name, who.token_id))


@router.get("/annotations")
def list_annotations(
    request: Request,
    session: ReadSession,
    page: Page,
    project: str | None = None,
    hardware_class: str | None = None,
    kind: Annotated[str | None, Query(description="note, environment_change, deploy")] = None,
    commit: Annotated[str | None, Query(description="a commit sha or a prefix of it")] = None,
) -> Any:
    """Notes on the timeline, e.g. a hardware class's machine fingerprint changing (driver, OS)."""
    filters = AnnotationFilters(project, hardware_class, kind, commit)
    return listing_response(request, session, page, service.annotations_listing(filters))


@router.get("/projects/{slug}/analysis-settings")
def get_analysis_settings(slug: str, session: ReadSession) -> Any:
    """The detector's built-in settings, the project's overrides, and what holds per metric."""
    return json_response(service.settings_view(session, slug))


@router.put("/projects/{slug}/analysis-settings")
def put_analysis_settings(slug: str, body: SettingsIn, session: DbSession, ctx: AppCtx, _: AdminAuth) -> Any:
    """Replace the project's settings (`admin`); the project is analysed again with them."""
    return json_response(service.replace_settings(session, ctx, slug, body))
