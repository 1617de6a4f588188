"""Rate limits (429 + Retry-After, configurable), CORS closed by default, settings that refuse
placeholder secrets in production, and secrets that never reach a log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from bench_server.github.signature import sign
from bench_server.kit.embedded import local_worker
from bench_server.kit.settings import Settings
from tests.bench_server.conftest import Api, batch, make_api
from tests.bench_server.jobs.helpers import Recorder, register_runner
from tests.bench_server.security.conftest import table_counts

SECRET = "a-real-webhook-secret-0123456789"
GH_TOKEN = "ghs_realLookingToken0123456789abcdef"


def test_writes_over_the_limit_are_429_with_retry_after_and_store_nothing(sqlite_database: str) -> None:
    api = make_api(sqlite_database, rate_limit_writes_per_s=0.5, rate_limit_writes_burst=3)
    with api.client:
        for i in range(3):
            assert api.ingest(batch(key=f"k{i}")).status_code == 201
        before = table_counts(api.db)
        resp = api.ingest(batch(key="k3"))
        assert resp.status_code == 429, resp.text
        assert resp.json()["error"] == "rate_limited"
        assert int(resp.headers["retry-after"]) >= 1
        assert table_counts(api.db) == before
        # reads are not limited; another client has its own bucket
        assert all(api.client.get("/api/v1/results").status_code == 200 for _ in range(10))
        assert api.ingest(batch(key="ci-1"), headers=api.ci).status_code == 201
    api.db.engine.dispose()


def test_the_webhook_is_limited_per_sender(sqlite_database: str) -> None:
    api = make_api(
        sqlite_database,
        github_webhook_secret=SECRET,
        rate_limit_webhook_per_s=0.1,
        rate_limit_webhook_burst=2,
    )
    headers = {"X-GitHub-Event": "ping", "X-GitHub-Delivery": "d", "X-Hub-Signature-256": sign(SECRET, b"{}")}
    with api.client:
        codes = [api.client.post("/api/v1/github/webhook", content=b"{}", headers=headers).status_code]
        codes += [api.client.post("/api/v1/github/webhook", content=b"{}", headers=headers).status_code]
        limited = api.client.post("/api/v1/github/webhook", content=b"{}", headers=headers)
    assert codes == [200, 200]
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    api.db.engine.dispose()


def test_a_limit_of_zero_is_off(sqlite_database: str) -> None:
    api = make_api(sqlite_database, rate_limit_writes_per_s=0, rate_limit_writes_burst=1)
    with api.client:
        assert [api.ingest(batch(key=f"k{i}")).status_code for i in range(5)] == [201] * 5
    api.db.engine.dispose()


def test_cors_is_closed_by_default(api: Api) -> None:
    preflight = api.client.options(
        "/api/v1/results",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    get = api.client.get("/api/v1/results", headers={"Origin": "https://evil.example"})
    assert get.status_code == 200 and "access-control-allow-origin" not in get.headers


def test_cors_opens_only_to_the_configured_origins(sqlite_database: str) -> None:
    api = make_api(sqlite_database, cors_origins=["https://bench.example.org"])
    with api.client:
        ok = api.client.get("/api/v1/results", headers={"Origin": "https://bench.example.org"})
        evil = api.client.get("/api/v1/results", headers={"Origin": "https://evil.example"})
    assert ok.headers["access-control-allow-origin"] == "https://bench.example.org"
    assert "access-control-allow-origin" not in evil.headers
    api.db.engine.dispose()


PG = "postgresql+psycopg://bench:s3cret-Pass@db/bench"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"github_webhook_secret": "change-me"}, "BENCH_GITHUB_WEBHOOK_SECRET"),
        ({"github_webhook_secret": "  Secret "}, "BENCH_GITHUB_WEBHOOK_SECRET"),
        ({"github_webhook_secret": ""}, "BENCH_GITHUB_WEBHOOK_SECRET"),
        ({"github_token": "changeme"}, "BENCH_GITHUB_TOKEN"),
        ({"database_url": "postgresql+psycopg://bench:change-me@db/bench"}, "BENCH_DATABASE_URL"),
        ({"broker_url": "redis://:password@redis:6379/0"}, "BENCH_BROKER_URL"),
        ({"database_url": "sqlite:///bench.db"}, "BENCH_DATABASE_URL"),
    ],
)
def test_production_refuses_placeholder_secrets(override: dict[str, str], message: str) -> None:
    values = {"environment": "production", "database_url": PG, "github_webhook_secret": SECRET} | override
    with pytest.raises(ValidationError, match=message):
        Settings(**values)  # type: ignore[arg-type]


def test_real_secrets_pass_and_the_demo_takes_anything() -> None:
    Settings(environment="production", database_url=PG, github_webhook_secret=SECRET, github_token=GH_TOKEN)
    Settings(environment="production", database_url=PG, github_webhook_secret=SECRET)  # no token: fine
    Settings(environment="development", github_webhook_secret="dev", github_token="change-me")


def test_a_printed_settings_shows_no_secret() -> None:
    settings = Settings(
        environment="production",
        database_url=PG,
        broker_url="redis://:r3dis-Pass@redis:6379/0",
        github_webhook_secret=SECRET,
        github_token=GH_TOKEN,
    )
    for text in (repr(settings), str(settings)):
        for secret in (SECRET, GH_TOKEN, "s3cret-Pass", "r3dis-Pass"):
            assert secret not in text, (secret, text)
    assert settings.github_token.get_secret_value() == GH_TOKEN


def test_secrets_and_tokens_never_reach_the_logs(
    database_url: str, shared_data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    github = Recorder(script=[422, 500], default=201)  # a refusal and a retry are logged
    caplog.set_level(logging.DEBUG)
    api = make_api(
        database_url,
        github_webhook_secret=SECRET,
        github_token=GH_TOKEN,
        github_api_url=github.url,
        task_retry_base_s=0.01,
    )
    api.client = TestClient(api.client.app, raise_server_exceptions=False)
    tokens = [h["Authorization"].split(" ", 1)[1] for h in (api.admin, api.runner, api.ci)]
    try:
        with api.client:
            runner = register_runner(api.client, api.db, "cpu-1")
            tokens.append(runner["token"])
            body = (shared_data / "github_webhooks" / "push.with-new-branch.payload.json").read_bytes()
            body = body.replace(b"Codertocat/Hello-World", b"exo-explore/exo").replace(
                b'"refs/heads/master"', b'"refs/heads/main"'
            )
            hook = {"X-GitHub-Event": "push", "X-GitHub-Delivery": "d1", "Content-Type": "application/json"}
            bad = api.client.post(
                "/api/v1/github/webhook", content=body, headers={**hook, "X-Hub-Signature-256": "sha256=00"}
            )
            assert bad.status_code == 401
            good = api.client.post(
                "/api/v1/github/webhook",
                content=body,
                headers={**hook, "X-Hub-Signature-256": sign(SECRET, body)},
            )
            assert good.status_code == 202, good.text
            assert local_worker.drain(30)
            job = api.client.post("/api/v1/jobs/claim?wait=5", headers=runner["headers"]).json()
            api.client.post(f"/api/v1/jobs/{job['id']}/start", headers=runner["headers"])
            api.client.post(
                f"/api/v1/jobs/{job['id']}/finish", json={"state": "succeeded"}, headers=runner["headers"]
            )
            assert local_worker.drain(30)
            api.client.post(
                "/api/v1/results", json=batch(), headers={"Authorization": f"Bearer {tokens[0]}x"}
            )
        assert github.requests, "GitHub was called"
        assert all(r.headers["authorization"] == f"Bearer {GH_TOKEN}" for r in github.requests)
    finally:
        github.close()
        api.db.engine.dispose()
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "GitHub refused the status" in logged  # the refusal was logged...
    for secret in (SECRET, GH_TOKEN, *tokens):
        assert secret not in logged  # ...without a secret
