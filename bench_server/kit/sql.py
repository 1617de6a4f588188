"""Small SQL helpers that must behave the same on PostgreSQL and SQLite."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def canonical_json(value: Any) -> str:
    """Key-sorted, whitespace-free JSON: equal data gives equal text on every machine."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def stable_hash(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def insert_ignoring_conflicts(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], conflict_columns: Sequence[str]
) -> None:
    """INSERT ... ON CONFLICT DO NOTHING: safe when concurrent requests create the same row."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    stmt = module.insert(table).on_conflict_do_nothing(index_elements=list(conflict_columns))
    session.execute(stmt, list(rows))


def bulk_insert(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], json_columns: set[str]
) -> None:
    """Insert many rows inside the session's transaction.

    PostgreSQL gets COPY (an order of magnitude faster than executemany for thousands of rows);
    other databases get an executemany. All rows must have the same keys.
    """
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        session.execute(insert(table), list(rows))
        return
    columns = list(rows[0])
    raw = connection.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(
                [
                    canonical_json(row[c]) if c in json_columns and row[c] is not None else row[c]
                    for c in columns
                ]
            )
