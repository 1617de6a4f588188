"""SQL for operations: whether the database answers."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session


def ping(session: Session) -> str:
    """Run a trivial query; the database's dialect name."""
    session.execute(text("SELECT 1"))
    return session.get_bind().dialect.name
