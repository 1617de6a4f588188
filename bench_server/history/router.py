"""`/api/v1/series` and `/api/v1/commits`."""

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
