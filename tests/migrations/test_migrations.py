"""The migrations build the schema the models describe, on PostgreSQL and SQLite, and come back down."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect

from bench_server.kit.db import normalise_url
from bench_server.kit.migrate import alembic_config, check, downgrade, upgrade
from bench_server.models import Base

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["postgres", "sqlite"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    # A fresh database copied from template0 (empty), created like pg_database but not migrated.
    import uuid

    import psycopg

    from tests.conftest import PG_ADMIN_URL, pg_url

    name = f"bench_m_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    request.addfinalizer(lambda: _drop(name))
    return pg_url(name)


def _drop(name: str) -> None:
    import psycopg

    from tests.conftest import PG_ADMIN_URL

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def _tables(url: str) -> set[str]:
    engine = create_engine(normalise_url(url))
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_check_downgrade_upgrade(empty_database: str) -> None:
    upgrade(empty_database)
    assert _tables(empty_database) == set(Base.metadata.tables)
    check(empty_database)  # raises if models and migrations disagree
    downgrade(empty_database, "base")
    assert _tables(empty_database) == set()
    upgrade(empty_database)
    assert _tables(empty_database) == set(Base.metadata.tables)


def test_every_revision_steps_down_and_up_one_at_a_time(empty_database: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(empty_database))
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    for rev in revisions:
        upgrade(empty_database, rev)
    for rev in reversed(revisions):
        downgrade(empty_database, "-1")
        upgrade(empty_database, rev)
        downgrade(empty_database, "-1")
        assert rev not in _current(empty_database)


def _current(url: str) -> set[str]:
    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            if "alembic_version" not in inspect(conn).get_table_names():
                return set()
            return {row[0] for row in conn.exec_driver_sql("SELECT version_num FROM alembic_version")}
    finally:
        engine.dispose()


def test_alembic_cli_check_on_sqlite(tmp_path: Path) -> None:
    """`alembic upgrade head` and `alembic check` as a person would run them from the repo."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {"BENCH_DATABASE_URL": url, "PATH": str(Path(sys.executable).parent)}
    alembic = str(Path(sys.executable).parent / "alembic")
    for args in (["upgrade", "head"], ["check"]):
        done = subprocess.run(
            [alembic, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
    assert "No new upgrade operations detected" in done.stdout + done.stderr
