"""The Celery path: the API and a worker in their own processes, talking through Redis, turn an
ingested regression into an incident."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench_server.auth.service import create_token
from bench_server.kit.db import Database
from bench_server.models import Project
from tests.bench_server.analysis.helpers import FINGERPRINT, noisy, sha
from tests.bench_server.conftest import batch, result
from tests.bench_server.jobs.helpers import (
    REPO,
    VENV_BIN,
    LiveServer,
    bearer,
    empty_redis,
    stop_process,
    wait_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]
REDIS_URL = "redis://127.0.0.1:6379/12"


@pytest.fixture
def broker() -> Iterator[str]:
    yield from empty_redis(REDIS_URL)


def test_a_celery_worker_analyses_each_ingest(pg_database: str, tmp_path: Path, broker: str) -> None:
    db = Database.from_url(pg_database)
    with db.transaction() as session:
        session.add(Project(slug="exo", name="exo", default_branch="main"))
        headers = bearer(create_token(session, "runner", ["runner"]).token)
    server = LiveServer(pg_database, tmp_path / "api.log", broker_url=broker).start()
    worker_log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [str(VENV_BIN / "celery"), "-A", "bench_server.worker", "worker", "-Q", "analysis",
         "--pool", "threads", "-c", "2", "--loglevel", "INFO", "--without-mingle", "--without-gossip"],
        env=server.env,
        cwd=REPO,
        stdout=worker_log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for i, value in enumerate([*noisy(30, 100.0), 85.0]):
                body = batch(
                    key=f"live-{i}",
                    sha=sha(i),
                    commit={"sha": sha(i), "branch": "main", "parents": [sha(i - 1)] if i else []},
                    machine={"hardware_class": "cpu-x86_64", "fingerprint": FINGERPRINT},
                    results=[result(value=value)],
                )
                assert http.post("/api/v1/results", json=body, headers=headers).status_code == 201
            alerts = wait_for(
                lambda: http.get("/api/v1/alerts", params={"project": "exo"}).json()["items"],
                60,
                "the worker's analysis",
            )
            assert [(a["kind"], a["commit"]) for a in alerts] == [("regression", sha(30))]
            commit = http.get(f"/api/v1/commits/{sha(30)}", params={"project": "exo"}).json()
            assert [a["id"] for a in commit["alerts"]] == [alerts[0]["id"]]
            (incident,) = http.get("/api/v1/incidents", params={"project": "exo"}).json()["items"]
            assert incident["commit"] == sha(30)
    finally:
        stop_process(worker)
        worker_log.close()
        server.stop()
        db.engine.dispose()
    assert "analysis.update" in (tmp_path / "worker.log").read_text()
