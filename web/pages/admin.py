"""Admin sign-in and sign-out for the triage forms (see web/admin.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bench_server.auth.service import authenticate
from bench_server.kit.deps import ReadSession
from bench_server.kit.errors import Forbidden, Unauthorized
from web.admin import clear_admin_cookie, csrf_token, form_fields, set_admin_cookie
from web.pages.alerts import local_path
from web.pages.base import router
from web.render import build_url, render


@router.get("/admin/sign-in", name="sign_in", response_class=HTMLResponse)
def sign_in_page(request: Request, next: str | None = None) -> HTMLResponse:
    return render(
        request,
        "sign_in.html",
        title="Admin sign-in",
        next=local_path(next, build_url(request, "alerts_page")),
        error=None,
        csrf=csrf_token(request),
    )


@router.post("/admin/sign-in", name="sign_in_post")
def sign_in(
    request: Request, session: ReadSession, form: Annotated[dict[str, str], Depends(form_fields)]
) -> Response:
    """Check an admin token once and keep it in an HttpOnly, SameSite=Strict cookie."""
    token = form.get("token", "").strip()
    target = local_path(form.get("next"), build_url(request, "alerts_page"))
    try:
        authenticate(session, token, ("admin",))
    except (Unauthorized, Forbidden):
        return render(
            request,
            "sign_in.html",
            title="Admin sign-in",
            next=target,
            error="That is not a live token with the admin scope.",
            csrf=None,
            status_code=401,
        )
    response = RedirectResponse(target, status_code=303)
    set_admin_cookie(response, request, token)
    return response


@router.post("/admin/sign-out", name="sign_out")
def sign_out(request: Request, form: Annotated[dict[str, str], Depends(form_fields)]) -> Response:
    expected = csrf_token(request)
    if expected is not None and form.get("csrf") != expected:
        raise Forbidden("the form's CSRF token does not match this sign-in")
    response = RedirectResponse(local_path(form.get("next"), build_url(request, "overview")), status_code=303)
    clear_admin_cookie(response)
    return response
