"""Serving curves: a concurrency sweep at a commit beside its baseline."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from bench_server.history import service as history
from bench_server.kit.deps import ReadSession
from web.figures import serving_figures
from web.pages.base import router
from web.render import FigureBlock, api_link, project_choices, render


@router.get("/serving", name="serving_page", response_class=HTMLResponse)
def serving_page(
    request: Request,
    session: ReadSession,
    project: str | None = None,
    benchmark: str | None = None,
    commit: str | None = None,
    hardware_class: str | None = None,
) -> HTMLResponse:
    data = history.serving_curves(
        session,
        project,
        benchmark=benchmark or None,
        commit=commit or None,
        hardware_class=hardware_class or None,
    )
    tput, ttft = serving_figures(data) if data["curves"] else (None, None)
    name = data.get("benchmark") or ""
    return render(
        request,
        "serving.html",
        title="Serving curves",
        project=data["project"],
        data=data,
        throughput=FigureBlock(
            "throughput", tput, f"Throughput per accelerator against interactivity for {name}."
        )
        if tput
        else None,
        ttft=FigureBlock("ttft", ttft, f"TTFT percentiles against load for {name}.") if ttft else None,
        projects=project_choices(request, "serving_page", data.get("projects", []), data["project"]),
        hardware_class=hardware_class,
        api=[
            api_link(
                request,
                "serving_view",
                project=data["project"],
                benchmark=benchmark,
                commit=commit,
                hardware_class=hardware_class,
            )
        ],
    )
