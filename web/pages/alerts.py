"""Alerts: incidents grouped per suspect commit, with filters, member series plots and, for a
signed-in admin, triage forms."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from bench_server.analysis import service as analysis
from bench_server.analysis.schemas import StateIn
from bench_server.history import service as history
from bench_server.kit.deps import AppCtx, DbSession, ReadSession
from bench_server.kit.errors import InvalidInput
from bench_server.kit.params import PathId
from web.admin import check_write, csrf_token, form_fields, verified_admin
from web.figures import series_figure
from web.pages.base import router
from web.pages.series import commit_url_template
from web.render import FigureBlock, api_link, build_url, project_choices, render


def local_path(candidate: str | None, fallback: str) -> str:
    """A redirect target that stays on this site (a path, not `//host` or a scheme)."""
    if candidate and candidate.startswith("/") and not candidate.startswith("//") and "\\" not in candidate:
        return candidate
    return fallback


@router.get("/alerts", name="alerts_page", response_class=HTMLResponse)
def alerts_page(
    request: Request,
    session: ReadSession,
    project: str | None = None,
    state: str | None = None,
    hardware_class: str | None = None,
    suite: str | None = None,
) -> HTMLResponse:
    data = history.alerts_view(
        session, project, state=state or None, hardware_class=hardware_class or None, suite=suite or None
    )
    figures = {}
    commit_url = commit_url_template(request, data["project"]) if data["project"] else None
    for g in data["groups"]:
        for s in g.get("series", []):
            fig = series_figure(
                {"traces": [s["trace"]], "metric": s["metric"], "alerts": [], "failures": []},
                compact=True,
                mark_sha=g["sha"],
            )
            if fig is not None:
                figures[s["alert_id"]] = FigureBlock(
                    f"alert-{s['alert_id']}",
                    fig,
                    f"{s['metric']['name']} of {s['benchmark']} on {s['hardware_class']}"
                    f" around {g['sha'][:10]}.",
                    commit_url=commit_url,
                )
    admin = verified_admin(session, request)
    here = build_url(
        request,
        "alerts_page",
        project=data["project"],
        state=state,
        hardware_class=hardware_class,
        suite=suite,
    )
    return render(
        request,
        "alerts.html",
        title="Alerts",
        project=data["project"],
        data=data,
        figures=figures,
        verified_admin=admin is not None,
        csrf=csrf_token(request) if admin else None,
        back=here,
        projects=project_choices(request, "alerts_page", data.get("projects", []), data["project"]),
        api=[
            api_link(
                request,
                "alerts_view",
                project=data["project"],
                state=state,
                hardware_class=hardware_class,
                suite=suite,
            )
        ],
    )


@router.post("/alerts/{alert_id}/triage", name="triage")
def triage(
    request: Request,
    session: DbSession,
    ctx: AppCtx,
    alert_id: PathId,
    form: Annotated[dict[str, str], Depends(form_fields)],
) -> Response:
    """Set an alert's state (and note) from the alerts page; admin only, with the form's CSRF
    token. The same service call as `POST /api/v1/alerts/{id}/state`, so the triage history
    records who changed what."""
    who = check_write(session, request, form)
    try:
        decision = StateIn.model_validate(
            {"state": form.get("state", ""), "note": (form.get("notes") or "").strip() or None}
        )
    except ValidationError as exc:
        raise InvalidInput("state", "; ".join(str(e["msg"]) for e in exc.errors())) from exc
    analysis.set_alert_state(session, ctx, alert_id, decision, who.name, who.token_id)
    return RedirectResponse(local_path(form.get("back"), build_url(request, "alerts_page")), status_code=303)
