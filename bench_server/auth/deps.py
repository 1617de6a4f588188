"""Scope checks as dependencies: `RunnerAuth`, `CiAuth`, `AdminAuth`, `IngestAuth`, `RegisterAuth`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from bench_server.auth.tokens import find_token
from bench_server.kit.db import Database
from bench_server.kit.deps import AppDatabase
from bench_server.kit.errors import Forbidden, Unauthorized


@dataclass(frozen=True)
class Principal:
    token_id: int
    name: str
    scopes: frozenset[str]
    runner_id: int | None


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("a bearer token is required for this request (Authorization: Bearer <token>)")
    return value.strip()


def require_scopes(*accepted: str) -> Callable[[Request, Database], Principal]:
    """A dependency that admits a token holding any of `accepted` (admin is accepted everywhere)."""

    def dependency(request: Request, db: AppDatabase) -> Principal:
        token = _bearer(request)
        with db.read_only() as session:
            row = find_token(session, token)
            if row is None:
                raise Unauthorized("unknown or revoked token")
            scopes = frozenset(row.scopes)
            principal = Principal(row.id, row.name, scopes, row.runner_id)
        if not scopes & (set(accepted) | {"admin"}):
            raise Forbidden(f"this request needs a token with scope {' or '.join(accepted)}")
        return principal

    return dependency


RunnerAuth = Annotated[Principal, Depends(require_scopes("runner"))]
CiAuth = Annotated[Principal, Depends(require_scopes("ci"))]
AdminAuth = Annotated[Principal, Depends(require_scopes("admin"))]
IngestAuth = Annotated[Principal, Depends(require_scopes("runner", "ci"))]
RegisterAuth = Annotated[Principal, Depends(require_scopes("register"))]
