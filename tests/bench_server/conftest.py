"""API fixtures: the app over a fresh database, a client and tokens of each scope."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bench_server.app import create_app
from bench_server.auth.service import create_token
from bench_server.kit.db import Database
from bench_server.kit.settings import Settings
from bench_server.models import Project


@dataclass
class Api:
    client: TestClient
    db: Database
    admin: dict[str, str]
    runner: dict[str, str]
    ci: dict[str, str]

    def ingest(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        return self.client.post("/api/v1/results", json=body, headers=headers or self.runner)


def make_api(url: str, **settings: Any) -> Api:
    db = Database.from_url(url)
    app = create_app(Settings(database_url=url, environment="test", **settings), db=db)
    with db.transaction() as session:
        tokens = {s: create_token(session, f"test-{s}", [s]).token for s in ("admin", "runner", "ci")}
        session.add(Project(slug="exo", name="exo", default_branch="main", github_repo="exo-explore/exo"))
    return Api(
        TestClient(app, raise_server_exceptions=True),
        db,
        *({"Authorization": f"Bearer {tokens[s]}"} for s in ("admin", "runner", "ci")),
    )


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    api = make_api(database_url)
    with api.client:
        yield api
    api.db.engine.dispose()


def result(metric: str = "output_throughput", value: float = 100.0, **over: Any) -> dict[str, Any]:
    body = {
        "suite": "serving",
        "benchmark": "gemma-270m-128x64",
        "params": {"isl": 128, "osl": 64, "concurrency": 4},
        "metric": metric,
        "unit": "tok/s",
        "direction": "higher",
        "value": value,
    }
    body.update(over)
    return body


def batch(
    key: str = "k1", sha: str = "a" * 40, results: list[dict[str, Any]] | None = None, **over: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "idempotency_key": key,
        "project": "exo",
        "commit": {"sha": sha, "branch": "main"},
        "machine": {
            "hardware_class": "cpu-x86_64",
            "fingerprint": {"cpu": "EPYC", "cores": 2},
            "hostname": "ci",
        },
        "results": [result()] if results is None else results,
    }
    body.update(over)
    return body
