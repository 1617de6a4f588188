"""Fixtures of the deployment tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from tests.conftest import PG_ADMIN_URL


@contextmanager
def empty_pg_database(prefix: str) -> Iterator[str]:
    """A database with nothing in it, not even the schema (unlike the template copies of
    tests/conftest.py): its name, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_database() -> Iterator[str]:
    with empty_pg_database("bench_empty") as name:
        yield name
