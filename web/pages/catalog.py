"""Every series that has results, from the series catalog, with filters."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from bench_server.catalog import service as catalog
from bench_server.history import service as history
from bench_server.kit.deps import ReadSession
from web.pages.base import router
from web.render import api_link, project_choices, render


def pivot(entries: list[dict[str, Any]], hardware: list[str]) -> list[dict[str, Any]]:
    """One row per benchmark, parameter set and metric; a cell per hardware class that has it."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for e in entries:
        key = (e["suite"], e["benchmark"], e["benchmark_id"], e["metric"])
        row = rows.setdefault(
            key,
            {
                "suite": e["suite"],
                "benchmark": e["benchmark"],
                "benchmark_id": e["benchmark_id"],
                "params_label": history.params_label(e["params"] or {}),
                "metric": e["metric"],
                "unit": e["unit"],
                "cells": {},
            },
        )
        row["cells"][e["hardware_class"]] = e
    return [{**r, "cells": [r["cells"].get(h) for h in hardware]} for r in rows.values()]


@router.get("/catalog", name="catalog_page", response_class=HTMLResponse)
def catalog_page(
    request: Request,
    session: ReadSession,
    project: str | None = None,
    suite: str | None = None,
    metric: str | None = None,
    hardware_class: str | None = None,
) -> HTMLResponse:
    proj = history.default_project(session, project)
    entries = (
        history.catalog(
            session, proj, suite=suite or None, metric=metric or None, hardware_class=hardware_class or None
        )
        if proj
        else []
    )
    everything = history.catalog(session, proj) if proj else []
    slug = proj.slug if proj else None
    hardware = sorted({e["hardware_class"] for e in entries})
    rows = pivot(entries, hardware)
    return render(
        request,
        "catalog.html",
        title="Series",
        project=slug,
        rows=rows,
        columns=hardware,
        count=len(entries),
        projects=project_choices(request, "catalog_page", [p.slug for p in catalog.projects(session)], slug),
        suites=sorted({e["suite"] for e in everything}),
        metrics=sorted({e["metric"] for e in everything}),
        hardware=sorted({e["hardware_class"] for e in everything}),
        filters={"suite": suite, "metric": metric, "hardware_class": hardware_class},
        api=[
            api_link(
                request,
                "list_series_catalog",
                project=slug,
                suite=suite,
                metric=metric,
                hardware_class=hardware_class,
            )
        ],
    )
