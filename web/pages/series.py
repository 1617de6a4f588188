"""Series: one metric over commits, a trace per hardware class or per parameter value."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import HTMLResponse

from bench_server.history import service as history
from bench_server.kit.deps import ReadSession
from web.figures import series_figure
from web.pages.base import router
from web.render import FigureBlock, api_link, build_url, render

TABLE_POINTS = 25  # the newest points listed under the plot


def commit_url_template(request: Request, project: str) -> str:
    """The commit page's URL with `{sha}` (percent-encoded) where plots.js puts a point's sha."""
    return build_url(request, "commit_page", sha="{sha}", project=project)


def latest_rows(trace: dict[str, Any], n: int = TABLE_POINTS) -> list[dict[str, Any]]:
    rows = []
    values = trace["value"]
    for i in range(len(values) - 1, max(-1, len(values) - 1 - n), -1):
        previous = values[i - 1] if i > 0 else None
        rows.append(
            {
                "sha": trace["sha"][i],
                "committed_at": trace["committed_at"][i],
                "message": trace["message"][i],
                "value": values[i],
                "n": trace["n"][i],
                "lo": trace["lo"][i],
                "hi": trace["hi"][i],
                "change": (values[i] - previous) / abs(previous) if previous else None,
            }
        )
    return rows


@router.get("/series", name="series_page", response_class=HTMLResponse)
def series_page(
    request: Request,
    session: ReadSession,
    project: str,
    benchmark_id: int,
    metric: str,
    hardware_class: Annotated[list[str], Query()] = [],  # noqa: B006 (FastAPI copies defaults)
    branch: str | None = None,
    vary: str | None = None,
) -> HTMLResponse:
    data = history.series_view(
        session,
        project=project,
        benchmark_id=benchmark_id,
        metric=metric,
        hardware_classes=hardware_class,
        branch=branch,
        vary=vary,
    )
    bench, met = data["benchmark"], data["metric"]
    fig = series_figure(data)
    block = (
        FigureBlock(
            "series",
            fig,
            f"{met['name']} of {bench['suite']}/{bench['name']} over commits; the tables below list"
            " the points.",
            commit_url=commit_url_template(request, data["project"]),
        )
        if fig is not None
        else None
    )
    query = {"project": data["project"], "benchmark_id": bench["id"], "metric": met["name"], "branch": branch}
    return render(
        request,
        "series.html",
        title=f"{bench['suite']}/{bench['name']} · {met['name']}",
        project=data["project"],
        data=data,
        figure=block,
        tables=[
            {"label": t["label"], "rows": latest_rows(t), "length": len(t["value"])} for t in data["traces"]
        ],
        params_label=history.params_label(bench["params"] or {}, skip=(vary,) if vary else ()),
        query=query,
        selected_hardware=hardware_class,
        api=[
            api_link(request, "series_view", **query, hardware_class=hardware_class, vary=vary),
            *(
                api_link(request, "get_series", **query, hardware_class=hw)
                for hw in (hardware_class or data["hardware_available"])[:4]
                if not vary
            ),
        ],
    )
