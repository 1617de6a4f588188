"""Fixtures of the security suite: the API with raised server exceptions turned into 500s (as a
client sees them), and counts of every table a refused request must leave alone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bench_server.kit.db import Database
from bench_server.kit.embedded import local_worker
from bench_server.models import Base
from tests.bench_server.conftest import Api, make_api


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    api = make_api(database_url)
    # A client sees a 500, not the traceback: the assertions below are about status codes.
    api.client = TestClient(api.client.app, raise_server_exceptions=False)
    with api.client:
        yield api
    api.db.engine.dispose()


def table_counts(db: Database) -> dict[str, int]:
    """Rows in every table (the token table too: refused requests must not even touch it), once
    the background work of earlier requests (analysis after ingest) has run."""
    assert local_worker.drain(), "the embedded worker did not settle"
    with db.read_only() as session:
        return {
            name: int(session.scalar(select(func.count()).select_from(table)) or 0)
            for name, table in sorted(Base.metadata.tables.items())
            if name != "api_tokens"
        }
