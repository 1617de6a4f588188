"""Admin sign-in for the website's triage forms.

The admin token is entered once and kept in a cookie the page's scripts cannot read (HttpOnly)
and that no other site's form or link sends (SameSite=Strict). Each form also carries a CSRF
token derived from the admin token (an HMAC), which a forged request cannot know; the server
recomputes it from the cookie. The token itself is checked against the store on every write.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from bench_server.auth.service import Principal, authenticate
from bench_server.kit.errors import AppError, Forbidden, Unauthorized

COOKIE = "bench_admin"
COOKIE_MAX_AGE_S = 7 * 24 * 3600
MAX_FORM_BYTES = 64 * 1024


def admin_token(request: Request) -> str | None:
    return request.cookies.get(COOKIE) or None


def admin_name(request: Request) -> str | None:
    """Shown in the header: whether this browser holds an admin cookie (checked on each write)."""
    return "admin" if admin_token(request) else None


def csrf_for(token: str) -> str:
    return hmac.new(token.encode(), b"bench-website-csrf", hashlib.sha256).hexdigest()


def csrf_token(request: Request) -> str | None:
    token = admin_token(request)
    return csrf_for(token) if token else None


def verified_admin(session: Session, request: Request) -> Principal | None:
    """The admin the cookie names, if its token is live and holds the admin scope."""
    token = admin_token(request)
    if token is None:
        return None
    try:
        return authenticate(session, token, ("admin",))
    except (Unauthorized, Forbidden):
        return None


def check_write(session: Session, request: Request, form: dict[str, str]) -> Principal:
    """A triage write: a live admin cookie and the CSRF token that goes with it."""
    token = admin_token(request)
    if token is None:
        raise Unauthorized("sign in with an admin token first")
    sent = form.get("csrf", "")
    if not hmac.compare_digest(sent.encode(), csrf_for(token).encode()):
        raise Forbidden("the form's CSRF token does not match this sign-in; reload the page")
    return authenticate(session, token, ("admin",))


def set_admin_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=COOKIE_MAX_AGE_S,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def clear_admin_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")


async def form_fields(request: Request) -> dict[str, str]:
    """An urlencoded form body as a dict (first value of each field)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise AppError("form too large", code="payload_too_large")
    parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}
