"""Hardware comparison: one benchmark across hardware classes."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from bench_server.history import service as history
from bench_server.kit.deps import ReadSession
from web.figures import hardware_figure
from web.pages.base import router
from web.render import FigureBlock, api_link, project_choices, render


@router.get("/hardware", name="hardware_page", response_class=HTMLResponse)
def hardware_page(
    request: Request,
    session: ReadSession,
    project: str | None = None,
    benchmark_id: int | None = None,
    metric: str | None = None,
    commit: str | None = None,
) -> HTMLResponse:
    data = history.hardware_comparison(
        session, project, benchmark_id=benchmark_id, metric=metric or None, commit=commit or None
    )
    fig = hardware_figure(data) if data["rows"] else None
    sel = data.get("selected")
    block = (
        FigureBlock(
            "hardware", fig, f"{sel['metric']} of {sel['benchmark']} per hardware class; see the table."
        )
        if fig is not None and sel
        else None
    )
    return render(
        request,
        "hardware.html",
        title="Hardware comparison",
        project=data["project"],
        data=data,
        figure=block,
        projects=project_choices(request, "hardware_page", data.get("projects", []), data["project"]),
        api=[
            api_link(
                request,
                "hardware_view",
                project=data["project"],
                benchmark_id=benchmark_id,
                metric=metric,
                commit=commit,
            ),
            api_link(request, "list_hardware"),
        ],
    )
