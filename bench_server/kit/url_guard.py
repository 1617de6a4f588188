"""Refuse URLs whose parameters hold control characters, before any route sees them.

PostgreSQL refuses NUL in text outright, so `?project=%00` would otherwise be a 500 at the first
query that compares with it; no name, sha or filter this API takes contains a control character.
The answer is the usual 422 naming the parameter.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from bench_server.kit.errors import send_error


def _has_control(text: str) -> bool:
    return any(ord(c) < 0x20 or c == "\x7f" for c in text)


def offending_parameter(scope: Scope) -> str | None:
    """The name of the first URL parameter (or "path") that holds a control character."""
    path: str = scope.get("path", "")
    if _has_control(path):
        return "path"
    raw: bytes = scope.get("query_string", b"")
    query = raw.decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True, errors="replace"):
        if _has_control(value) or _has_control(name):
            return str(name)
    return None


class UrlGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = offending_parameter(scope) if scope["type"] == "http" else None
        if name is None:
            await self.app(scope, receive, send)
            return
        detail = [{"field": name, "message": "control characters are not allowed", "type": "url_control"}]
        await send_error(send, 422, "validation_error", detail)
