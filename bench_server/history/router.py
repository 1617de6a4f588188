"""`/api/v1/series`, `/api/v1/series-catalog`, `/api/v1/commits` and `/api/v1/views/*` (the data
behind each page of the website)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from bench_server.history import service
from bench_server.kit.deps import ReadSession
from bench_server.kit.fastjson import json_response
from bench_server.kit.paging import Page, listing_response
from bench_server.kit.params import QueryId

router = APIRouter(tags=["history"])


@router.get("/series")
def get_series(
    session: ReadSession,
    project: str,
    metric: str,
    hardware_class: str,
    benchmark_id: QueryId = None,
    benchmark: str | None = None,
    suite: str | None = None,
    params_hash: str | None = Query(None, description="a prefix of the benchmark's params hash"),
    branch: str | None = Query(None, description="defaults to the project's default branch"),
    samples: bool = Query(False, description="include each commit's raw samples"),
) -> Any:
    """One metric of one benchmark on one hardware class over commits, in first-parent order."""
    key = service.resolve_series_key(
        session,
        project=project,
        metric=metric,
        hardware_class=hardware_class,
        branch=branch,
        benchmark_id=benchmark_id,
        suite=suite,
        benchmark=benchmark,
        params_hash=params_hash,
    )
    return json_response(service.series(session, key, with_samples=samples))


@router.get("/commits/{sha}")
def get_commit(
    session: ReadSession,
    sha: str,
    project: str,
    baseline: str | None = Query(None, description="compare against this commit instead (e.g. a merge-base)"),
) -> Any:
    """A commit's results beside its baseline (first parent, or the previous default-branch commit)."""
    return json_response(service.compare_commit(session, project, sha, baseline))


@router.get("/commits")
def list_commits(
    request: Request, session: ReadSession, project: str, page: Page, branch: str | None = None
) -> Any:
    """Commits of a project, newest first."""
    return listing_response(request, session, page, service.commits_listing(session, project, branch))


@router.get("/series-catalog")
def list_series_catalog(
    request: Request,
    session: ReadSession,
    page: Page,
    project: str | None = None,
    branch: str | None = None,
    suite: str | None = None,
    metric: str | None = None,
    hardware_class: str | None = None,
) -> Any:
    """Every series that has results (the catalog ingest keeps): its last commit and value,
    points and results, newest first."""
    listing = service.series_catalog_listing(session, project, branch, suite, metric, hardware_class)
    return listing_response(request, session, page, listing)


# The data behind each page of the website, as JSON (each page links to its call).


@router.get("/views/overview", tags=["views"])
def overview_view(session: ReadSession, project: str | None = None, branch: str | None = None) -> Any:
    """Per hardware class: the headline metrics' latest values, changes, sparklines and status;
    open incidents; the newest commits with a status per hardware class."""
    return json_response(service.overview(session, project, branch))


@router.get("/views/series", tags=["views"])
def series_view(
    session: ReadSession,
    project: str,
    benchmark_id: int,
    metric: str,
    hardware_class: list[str] = Query([], description="repeat for several; none: every class"),
    branch: str | None = None,
    vary: str | None = Query(None, description="a parameter: one trace per value (one hardware class)"),
) -> Any:
    """One metric over commits, a trace per hardware class (or parameter value), with the
    alerts, failures and annotations that mark it."""
    return json_response(
        service.series_view(
            session,
            project=project,
            benchmark_id=benchmark_id,
            metric=metric,
            hardware_classes=hardware_class,
            branch=branch,
            vary=vary,
        )
    )


@router.get("/views/commits/{sha}", tags=["views"])
def commit_view(session: ReadSession, sha: str, project: str, baseline: str | None = None) -> Any:
    """A commit's results beside its baseline grouped by suite and hardware class, its jobs
    (with the tail of each log), failures and alerts."""
    return json_response(service.commit_view(session, project, sha, baseline))


@router.get("/views/hardware", tags=["views"])
def hardware_view(
    session: ReadSession,
    project: str | None = None,
    benchmark_id: int | None = None,
    metric: str | None = None,
    commit: str | None = None,
    branch: str | None = None,
) -> Any:
    """One benchmark across hardware classes: absolute, per accelerator, per watt, per dollar-hour."""
    return json_response(
        service.hardware_comparison(
            session, project, benchmark_id=benchmark_id, metric=metric, commit=commit, branch=branch
        )
    )


@router.get("/views/serving", tags=["views"])
def serving_view(
    session: ReadSession,
    project: str | None = None,
    benchmark: str | None = None,
    commit: str | None = None,
    hardware_class: str | None = None,
    branch: str | None = None,
) -> Any:
    """A serving benchmark's load sweep at a commit beside its baseline."""
    return json_response(
        service.serving_curves(
            session, project, benchmark=benchmark, commit=commit, hardware_class=hardware_class, branch=branch
        )
    )


@router.get("/views/collectives", tags=["views"])
def collectives_view(
    session: ReadSession,
    project: str | None = None,
    collective: str | None = None,
    nranks: int | None = None,
    backend: str | None = None,
    commit: str | None = None,
    branch: str | None = None,
) -> Any:
    """A collective's bandwidth against message size at a commit beside its baseline, and its
    average-busbw series."""
    return json_response(
        service.collectives_view(
            session,
            project,
            collective=collective,
            nranks=nranks,
            backend=backend,
            commit=commit,
            branch=branch,
        )
    )


@router.get("/views/alerts", tags=["views"])
def alerts_view(
    session: ReadSession,
    project: str | None = None,
    state: str | None = Query(None, description="new, acknowledged, ignored, fixed, open (default) or all"),
    hardware_class: str | None = None,
    suite: str | None = None,
) -> Any:
    """Alerts grouped per suspect commit, with the recent points of their member series."""
    return json_response(
        service.alerts_view(session, project, state=state, hardware_class=hardware_class, suite=suite)
    )
