"""FastAPI dependencies as short `Annotated` aliases.

A request has one session. A write takes `DbSession`: the auth dependency
(`bench_server.auth.deps`) takes it too, and FastAPI resolves it once per request, so the token
lookup and the route's writes share one transaction on one connection. A read takes
`ReadSession` (read-only on PostgreSQL). Either session checks a connection out only at its first
statement.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from bench_server.kit.db import Database
from bench_server.kit.outbox import AppContext
from bench_server.kit.settings import Settings


def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_app_context(request: Request) -> AppContext:
    return AppContext(get_database(request), get_settings_dep(request))


def get_session(db: Annotated[Database, Depends(get_database)]) -> Iterator[Session]:
    with db.transaction() as session:
        yield session


def get_read_session(db: Annotated[Database, Depends(get_database)]) -> Iterator[Session]:
    with db.read_only() as session:
        yield session


# scope="function": the session ends before the response is sent, so a failed commit becomes an
# error response and never a 2xx for data that was not stored.
DbSession = Annotated[Session, Depends(get_session, scope="function")]
ReadSession = Annotated[Session, Depends(get_read_session, scope="function")]
AppDatabase = Annotated[Database, Depends(get_database)]
AppSettings = Annotated[Settings, Depends(get_settings_dep)]
AppCtx = Annotated[AppContext, Depends(get_app_context)]
