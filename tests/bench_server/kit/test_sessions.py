"""One session per request, shared with the auth dependency; read-only sessions that refuse
writes on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import InternalError

from bench_server.kit.db import Database
from bench_server.models import Project
from tests.bench_server.conftest import Api, batch
from tests.bench_server.jobs.helpers import register_runner, trigger


@pytest.mark.postgres
def test_a_write_in_a_read_only_session_fails_on_postgresql(pg_database: str) -> None:
    db = Database.from_url(pg_database)
    try:
        with db.read_only() as session:
            assert session.scalar(text("SHOW transaction_read_only")) == "on"
            session.add(Project(slug="nope", name="nope"))
            with pytest.raises(InternalError, match="read-only transaction"):
                session.flush()
        # the flag goes with the session: the same pooled connection writes again afterwards
        with db.transaction() as session:
            assert session.scalar(text("SHOW transaction_read_only")) == "off"
            session.add(Project(slug="yes", name="yes"))
        with db.read_only() as session:
            assert session.scalars(select(Project.slug)).all() == ["yes"]
    finally:
        db.engine.dispose()


def in_background() -> bool:
    """The embedded worker's thread: its tasks (an ingest's analysis) have sessions of their own."""
    return threading.current_thread().name == "bench-tasks"


@contextmanager
def pool_checkouts(db: Database) -> Iterator[list[int]]:
    """Count connection checkouts; the list holds the most connections out at once, and the total."""
    out = [0]
    seen = [0, 0]  # most at once, total

    def checkout(*_: Any) -> None:
        if in_background():
            return
        out[0] += 1
        seen[0] = max(seen[0], out[0])
        seen[1] += 1

    def checkin(*_: Any) -> None:
        if not in_background():
            out[0] -= 1

    event.listen(db.engine, "checkout", checkout)
    event.listen(db.engine, "checkin", checkin)
    try:
        yield seen
    finally:
        event.remove(db.engine, "checkout", checkout)
        event.remove(db.engine, "checkin", checkin)


def test_a_write_request_uses_one_connection(api: Api) -> None:
    """The token lookup and the route's writes share the request's session."""
    with pool_checkouts(api.db) as seen:
        assert api.ingest(batch()).status_code == 201
    assert seen == [1, 1]
    with pool_checkouts(api.db) as seen:
        assert (
            api.client.post("/api/v1/projects", json={"slug": "other"}, headers=api.admin).status_code == 201
        )
    assert seen == [1, 1]
    # a refused write is one connection too
    with pool_checkouts(api.db) as seen:
        assert (
            api.client.post("/api/v1/projects", json={"slug": "other"}, headers=api.admin).status_code == 409
        )
    assert seen == [1, 1]


def test_a_read_request_uses_one_connection(api: Api) -> None:
    assert api.ingest(batch()).status_code == 201
    with pool_checkouts(api.db) as seen:
        assert len(api.client.get("/api/v1/results").json()["items"]) == 1
    assert seen == [1, 1]


def test_a_waiting_claim_holds_no_connection_between_looks(api: Api) -> None:
    runner = register_runner(api.client, api.db, "cpu-1")
    with pool_checkouts(api.db) as seen:
        resp = api.client.post("/api/v1/jobs/claim?wait=0.5", headers=runner["headers"])
    assert resp.status_code == 204
    assert seen[0] == 1 and seen[1] >= 2  # one look after another, never two connections at once
    trigger(api.client, api.ci, "9" * 40)
    with pool_checkouts(api.db) as seen:
        resp = api.client.post("/api/v1/jobs/claim?wait=0", headers=runner["headers"])
    assert resp.status_code == 200 and seen == [1, 1]
