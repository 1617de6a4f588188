"""Fixtures for the website's tests: a seeded site (PostgreSQL and SQLite), shared by a module's
tests that only read; a live server over it for the browser tests."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from bench_server.app import create_app
from bench_server.kit.settings import Settings
from benchmarks._live import free_port
from tests.bench_server.conftest import api, make_api  # noqa: F401  (api: the fixture)
from tests.conftest import _pg_admin, pg_url
from tests.web.seed import Seeded, seed

ARTIFACTS = Path(__file__).parent / "artifacts"


def _database(kind: str, pg_template: str, sqlite_template: Path, tmp: Path) -> tuple[str, str | None]:
    if kind == "sqlite":
        path = tmp / "site.db"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite:///{path}", None
    name = f"bench_web_{uuid.uuid4().hex[:10]}"
    _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    return pg_url(name), name


@pytest.fixture(scope="module", params=["postgres", "sqlite"])
def site(
    request: pytest.FixtureRequest,
    pg_template: str,
    sqlite_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Seeded]:
    """A seeded site for tests that only read (one per module and database)."""
    url, pg_name = _database(request.param, pg_template, sqlite_template, tmp_path_factory.mktemp("site"))
    site_api = make_api(url)
    try:
        with site_api.client:
            yield seed(site_api)
    finally:
        site_api.db.engine.dispose()
        if pg_name:
            _pg_admin(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def live_site(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Seeded]]:
    """The seeded site served by uvicorn on a free port (SQLite), for a real browser."""
    url, _ = _database("sqlite", "", sqlite_template, tmp_path_factory.mktemp("live"))
    live_api = make_api(url)
    seeded = seed(live_api)
    port = free_port()
    app = create_app(Settings(database_url=url, environment="test"), db=live_api.db)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}", seeded
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        live_api.db.engine.dispose()
