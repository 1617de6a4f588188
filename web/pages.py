"""Dashboard pages. They read through the catalog and history services, never with queries."""

from __future__ import annotations

import html
from typing import Any

import plotly.graph_objects as go
from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from bench_server.catalog.service import projects
from bench_server.history.service import resolve_series_key, series, series_index
from bench_server.kit.deps import ReadSession
from bench_server.kit.errors import AppError

router = APIRouter(include_in_schema=False)

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<script src="/static/plotly.min.js"></script>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px}}
td,th{{padding:.2rem .6rem;text-align:left}} a{{color:#0b5cad}}</style></head><body><h1>{title}</h1>{body}
<p><a href="/">home</a> · <a href="/docs">API docs</a></p></body></html>"""


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(PAGE.format(title=html.escape(title), body=body))


@router.get("/", response_class=HTMLResponse)
def index(session: ReadSession) -> HTMLResponse:
    if not projects(session):
        return _page("Benchmarks", "<p>No projects yet. Create one with the API (POST /api/v1/projects).</p>")
    keys = series_index(session)
    rows = "".join(
        f"<tr><td>{html.escape(p)}</td><td>{html.escape(s)}/{html.escape(b)}</td><td>"
        f'<a href="/series?project={p}&benchmark_id={bid}&metric={m}&hardware_class={h}">'
        f"{html.escape(m)}</a></td><td>{html.escape(h)}</td></tr>"
        for p, bid, s, b, m, h in (
            (k.project, k.benchmark_id, k.suite, k.benchmark, k.metric, k.hardware_class) for k in keys
        )
    )
    body = (
        "<table><tr><th>project</th><th>benchmark</th><th>metric</th><th>hardware</th></tr>"
        + rows
        + "</table>"
    )
    return _page("Benchmarks", body)


@router.get("/series", response_class=HTMLResponse)
def series_page(
    session: ReadSession,
    project: str,
    benchmark_id: int,
    metric: str,
    hardware_class: str,
    branch: str | None = None,
) -> HTMLResponse:
    try:
        key = resolve_series_key(
            session,
            project=project,
            metric=metric,
            hardware_class=hardware_class,
            branch=branch,
            benchmark_id=benchmark_id,
        )
    except AppError as exc:
        return _page("Not found", f"<p>{html.escape(str(exc.detail))}</p>")
    data = series(session, key)
    figure = series_figure(data)
    title = f"{data['benchmark']['suite']}/{data['benchmark']['name']} · {metric} · {hardware_class}"
    return _page(title, figure.to_html(full_html=False, include_plotlyjs=False, div_id="series"))


def series_figure(data: dict[str, Any]) -> go.Figure:
    # x is the position in first-parent order (short shas can repeat; positions cannot);
    # the axis is labelled with short shas at up to ~20 evenly spaced ticks.
    shas = [sha[:8] for sha in data["commits"]]
    x = list(range(len(shas)))
    step = max(1, len(shas) // 20)
    fig = go.Figure(
        go.Scatter(
            x=x,
            y=data["values"],
            mode="lines+markers",
            name=data["metric"]["name"],
            customdata=list(zip(shas, data["n"], strict=True)),
            hovertemplate="%{customdata[0]}: %{y} (%{customdata[1]} runs)<extra></extra>",
        )
    )
    better = "higher" if data["metric"]["direction"] == "higher" else "lower"
    fig.update_layout(
        xaxis={"title": "commit (first-parent order)", "tickvals": x[::step], "ticktext": shas[::step]},
        yaxis_title=f"{data['metric']['name']} [{data['metric']['unit']}] ({better} is better)",
        margin={"l": 60, "r": 20, "t": 30, "b": 60},
    )
    return fig
