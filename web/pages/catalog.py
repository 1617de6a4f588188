"""Every series that has results, from the series catalog, with filters."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from bench_server.catalog import service as catalog
from bench_server.history import service as history
from bench_server.kit.deps import ReadSession
from web.pages.base import router
from web.render import api_link, project_choices, render


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
    for e in entries:
        e["params_label"] = history.params_label(e["params"] or {})
    return render(
        request,
        "catalog.html",
        title="Series",
        project=slug,
        entries=entries,
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
