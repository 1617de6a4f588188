"""Runners and jobs: every runner, the job queue and the newest finished jobs."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from bench_server.jobs import service as jobs
from bench_server.kit.deps import AppSettings, ReadSession
from bench_server.runners import service as runners
from web.pages.base import router
from web.render import api_link, render


@router.get("/runners", name="runners_page", response_class=HTMLResponse)
def runners_page(request: Request, session: ReadSession, settings: AppSettings) -> HTMLResponse:
    board = runners.runner_board(session, settings)
    queue = jobs.job_board(session)
    return render(
        request,
        "runners.html",
        title="Runners and jobs",
        runners=board,
        queue=queue["queue"],
        recent=queue["recent"],
        api=[
            api_link(request, "list_runners"),
            api_link(request, "list_machines"),
            api_link(request, "list_jobs", state="queued,claimed,running"),
            api_link(request, "list_jobs", state="succeeded,failed,cancelled,timed_out"),
        ],
    )
