"""FastAPI dependencies as short `Annotated` aliases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from bench_server.kit.db import Database
from bench_server.kit.settings import Settings


def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(db: Annotated[Database, Depends(get_database)]) -> Iterator[Session]:
    # scope="function" below: the commit happens before the response is sent, so a failed
    # commit becomes an error response and never a 2xx for data that was not stored.
    with db.transaction() as session:
        yield session


DbSession = Annotated[Session, Depends(get_session, scope="function")]
AppDatabase = Annotated[Database, Depends(get_database)]
AppSettings = Annotated[Settings, Depends(get_settings_dep)]
