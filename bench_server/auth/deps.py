"""The HTTP side of auth (it has no endpoints of its own): the bearer token of a request, checked
as a dependency in the request's own session. `RunnerAuth`, `CiAuth`, `AdminAuth`, `IngestAuth`,
`RegisterAuth`, `TriageAuth` admit a scope; `RunnerId` is the registered runner a runner token belongs to."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from bench_server.auth.service import Principal, authenticate, runner_of
from bench_server.kit.deps import DbSession
from bench_server.kit.errors import Unauthorized


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("a bearer token is required for this request (Authorization: Bearer <token>)")
    return value.strip()


def require_scopes(*accepted: str) -> Callable[[Request, Session], Principal]:
    """A dependency that admits a token holding any of `accepted` (admin is accepted everywhere)."""

    def dependency(request: Request, session: DbSession) -> Principal:
        return authenticate(session, _bearer(request), accepted)

    return dependency


RunnerAuth = Annotated[Principal, Depends(require_scopes("runner"))]
CiAuth = Annotated[Principal, Depends(require_scopes("ci"))]
AdminAuth = Annotated[Principal, Depends(require_scopes("admin"))]
IngestAuth = Annotated[Principal, Depends(require_scopes("runner", "ci"))]
RegisterAuth = Annotated[Principal, Depends(require_scopes("register"))]
# Changing the state of alerts and incidents.
TriageAuth = Annotated[Principal, Depends(require_scopes("triage"))]


def registered_runner(principal: RunnerAuth) -> int:
    return runner_of(principal)


RunnerId = Annotated[int, Depends(registered_runner)]
