"""`/api/v1/series` and `/api/v1/commits`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import select

from bench_server.catalog.repository import project_by_slug
from bench_server.history.service import compare_commit, resolve_series_key, series
from bench_server.kit.deps import AppDatabase
from bench_server.kit.fastjson import json_response
from bench_server.kit.paging import Page, listing_response
from bench_server.models import Commit

router = APIRouter(tags=["history"])


@router.get("/series")
def get_series(
    db: AppDatabase,
    project: str,
    metric: str,
    hardware_class: str,
    benchmark_id: int | None = None,
    benchmark: str | None = None,
    suite: str | None = None,
    params_hash: str | None = Query(None, description="a prefix of the benchmark's params hash"),
    branch: str | None = Query(None, description="defaults to the project's default branch"),
    samples: bool = Query(False, description="include each commit's raw samples"),
) -> Any:
    """One metric of one benchmark on one hardware class over commits, in first-parent order."""
    with db.read_only() as session:
        key = resolve_series_key(
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
        return json_response(series(session, key, with_samples=samples))


@router.get("/commits/{sha}")
def get_commit(
    db: AppDatabase,
    sha: str,
    project: str,
    baseline: str | None = Query(None, description="compare against this commit instead (e.g. a merge-base)"),
) -> Any:
    """A commit's results beside its baseline (first parent, or the previous default-branch commit)."""
    with db.read_only() as session:
        return json_response(compare_commit(session, project, sha, baseline))


@router.get("/commits")
def list_commits(
    request: Request,
    db: AppDatabase,
    project: str,
    page: Page,
    branch: str | None = None,
) -> Any:
    """Commits of a project, newest first."""
    with db.read_only() as session:
        proj = project_by_slug(session, project)
    query = select(
        Commit.id,
        Commit.sha,
        Commit.branch,
        Commit.parents,
        Commit.author,
        Commit.committed_at,
        Commit.order_key,
    ).where(Commit.project_id == proj.id)
    if branch:
        query = query.where(Commit.branch == branch)
    cols = ["id", "sha", "branch", "parents", "author", "committed_at", "order"]
    return listing_response(
        request,
        db,
        query,
        Commit.id,
        cols,
        page,
        name="commits",
    )
