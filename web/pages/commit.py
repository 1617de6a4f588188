"""Commit: every result beside its baseline, the jobs, failures and alerts."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from bench_server.history import service as history
from bench_server.kit.deps import ReadSession
from web.pages.base import router
from web.render import api_link, render

LARGEST_CHANGES = 10


def shared_params(group: dict[str, Any]) -> None:
    """Parameters every result of the group shares go to the group's heading; each row keeps
    only those that tell it apart."""
    rows = group["results"]
    params = [r["params"] or {} for r in rows]
    shared = {k: v for k, v in params[0].items() if all(p.get(k) == v for p in params)} if params else {}
    group["shared_params"] = history.params_label(shared)
    for r, p in zip(rows, params, strict=True):
        r["params_label"] = history.params_label(p, skip=tuple(shared))
        r["params_full"] = history.params_label(p)


@router.get("/commits/{sha}", name="commit_page", response_class=HTMLResponse)
def commit_page(
    request: Request, session: ReadSession, sha: str, project: str, baseline: str | None = None
) -> HTMLResponse:
    data = history.commit_view(session, project, sha, baseline)
    commit = data["commit"]
    for group in data["groups"]:
        shared_params(group)
    changed = [r for g in data["groups"] for r in g["results"] if r["change"] is not None]
    largest = sorted(changed, key=lambda r: -abs(r["change"]))[:LARGEST_CHANGES]
    return render(
        request,
        "commit.html",
        title=f"Commit {commit['sha'][:12]}",
        project=data["project"],
        data=data,
        largest=largest,
        api=[
            api_link(request, "commit_view", sha=commit["sha"], project=data["project"], baseline=baseline),
            api_link(request, "get_commit", sha=commit["sha"], project=data["project"], baseline=baseline),
            api_link(request, "list_jobs", project=data["project"], sha=commit["sha"]),
            api_link(request, "list_failures", project=data["project"], commit=commit["sha"]),
        ],
    )
