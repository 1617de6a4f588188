"""The `bench-server` command line, run as a subprocess the way an operator would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from bench_server.app import create_app
from bench_server.kit.settings import Settings
from tests.bench_server.conftest import batch

BIN = Path(sys.executable).parent / "bench-server"


def run(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), "--database-url", db, *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_migrate_create_project_and_tokens(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    assert run("migrate", db=db).returncode == 0
    assert run("project", "create", "exo", "--github-repo", "exo-explore/exo", db=db).returncode == 0
    bad = run("project", "create", "Not A Slug", db=db)
    assert bad.returncode == 2 and "slug" in bad.stderr

    made = run("token", "create", "--name", "runner-1", "--scope", "runner", db=db)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("bch_") and token not in (tmp_path / "cli.db").read_bytes().decode("latin-1")

    with TestClient(create_app(Settings(database_url=db))) as client:
        auth = {"Authorization": f"Bearer {token}"}
        assert client.post("/api/v1/results", json=batch(), headers=auth).status_code == 201
        assert client.post("/api/v1/projects", json={"slug": "x"}, headers=auth).status_code == 403
        token_id = made.stderr.split()[1]
        assert run("token", "revoke", token_id, db=db).returncode == 0
        assert client.post("/api/v1/results", json=batch("k2"), headers=auth).status_code == 401
