"""Overview: every hardware class at a glance, open incidents, the newest commits, runners."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from bench_server.history import service as history
from bench_server.kit.deps import AppSettings, ReadSession
from bench_server.runners import service as runners
from web.figures import sparkline
from web.pages.base import router
from web.render import api_link, project_choices, render


@router.get("/", name="overview", response_class=HTMLResponse)
def overview_page(
    request: Request, session: ReadSession, settings: AppSettings, project: str | None = None
) -> HTMLResponse:
    data = history.overview(session, project)
    board = runners.runner_board(session, settings)
    counts = {"online": 0, "busy": 0, "offline": 0, "disabled": 0}
    for r in board:
        counts["busy" if r["busy"] else r["status"]] = counts.get("busy" if r["busy"] else r["status"], 0) + 1
    for card in data["hardware"]:
        for m in card["metrics"]:
            m["spark_svg"] = sparkline(m["spark"]) if m["metric"] else ""
    return render(
        request,
        "overview.html",
        title=f"Benchmarks of {data['project']}" if data["project"] else "Benchmarks",
        project=data["project"],
        data=data,
        projects=project_choices(request, "overview", data["projects"], data["project"]),
        runner_counts=counts,
        runners=board,
        api=[
            api_link(request, "overview_view", project=data["project"]),
            api_link(request, "list_runners"),
        ],
    )
