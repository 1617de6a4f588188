"""Collectives: bandwidth against message size, and the average-busbw series."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from bench_server.history import service as history
from bench_server.kit.deps import ReadSession
from web.figures import collectives_figure, series_figure
from web.pages.base import router
from web.pages.series import commit_url_template
from web.render import FigureBlock, api_link, project_choices, render


@router.get("/collectives", name="collectives_page", response_class=HTMLResponse)
def collectives_page(
    request: Request,
    session: ReadSession,
    project: str | None = None,
    collective: str | None = None,
    nranks: int | None = None,
    backend: str | None = None,
    commit: str | None = None,
) -> HTMLResponse:
    data = history.collectives_view(
        session,
        project,
        collective=collective or None,
        nranks=nranks,
        backend=backend or None,
        commit=commit or None,
    )
    sel = data.get("selected") or {}
    what = f"{sel.get('collective', '')} over {sel.get('nranks', '?')} ranks"
    busbw = collectives_figure(data, "busbw")
    algbw = collectives_figure(data, "algbw")
    avg = None
    if data["avg_busbw"]:
        avg_fig = series_figure(
            {
                "traces": data["avg_busbw"],
                "metric": {"name": "avg_busbw", "unit": "GB/s", "direction": "higher"},
            }
        )
        if avg_fig is not None:
            avg = FigureBlock(
                "avg-busbw",
                avg_fig,
                f"Average bus bandwidth of {what} over commits.",
                commit_url=commit_url_template(request, data["project"]),
            )
    return render(
        request,
        "collectives.html",
        title="Collectives",
        project=data["project"],
        data=data,
        busbw=FigureBlock("busbw", busbw, f"busbw against message size for {what}.") if busbw else None,
        algbw=FigureBlock("algbw", algbw, f"algbw against message size for {what}.") if algbw else None,
        avg=avg,
        projects=project_choices(request, "collectives_page", data.get("projects", []), data["project"]),
        api=[
            api_link(
                request,
                "collectives_view",
                project=data["project"],
                collective=sel.get("collective"),
                nranks=sel.get("nranks"),
                backend=sel.get("backend"),
                commit=commit,
            )
        ],
    )
