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
    session: Session,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    json_columns: Sequence[str] = (),
) -> None:
    """Insert many rows (tuples in `columns` order) inside the session's transaction.

    PostgreSQL gets COPY (an order of magnitude faster than executemany for thousands of rows);
    other databases get an executemany.
    """
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        session.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])
        return
    json_at = [i for i, c in enumerate(columns) if c in json_columns]
    raw = connection.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            if json_at:
                row = list(row)
                for i in json_at:
                    if row[i] is not None:
                        row[i] = canonical_json(row[i])
            copy.write_row(row)
