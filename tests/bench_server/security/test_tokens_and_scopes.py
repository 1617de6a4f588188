"""Tokens: scopes enforced on every write, revocation at once, only hashes stored, and
`last_used_at` written on use (at most once a minute per token)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bench_server.auth.service import LAST_USED_RESOLUTION, hash_token, revoke_token
from bench_server.models import ApiToken
from bench_server.models.base import utcnow
from tests.bench_server.conftest import Api, batch
from tests.bench_server.jobs.helpers import register_runner, trigger
from tests.bench_server.security.conftest import table_counts

SHA = "d" * 40

# (method, path, json body): each needs a scope that a plain runner token does not have.
NOT_FOR_RUNNERS = [
    ("POST", "/api/v1/runs", {"project": "exo", "sha": SHA}),
    ("POST", "/api/v1/jobs/1/cancel", None),
    ("POST", "/api/v1/projects", {"slug": "evil"}),
    ("POST", "/api/v1/hardware", {"name": "evil-hw"}),
    ("PUT", "/api/v1/projects/exo/suites", {"suites": ["x"]}),
]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].split(" ", 1)[1]


@pytest.mark.parametrize(("method", "path", "body"), NOT_FOR_RUNNERS)
def test_a_runner_token_cannot_trigger_cancel_or_administer(
    api: Api, method: str, path: str, body: object
) -> None:
    runner = register_runner(api.client, api.db, "r1")
    trigger(api.client, api.ci, SHA)
    before = table_counts(api.db)
    for headers in (runner["headers"], api.runner):
        resp = api.client.request(method, path, json=body, headers=headers)
        assert resp.status_code == 403, (path, resp.text)
        assert resp.json()["error"] == "forbidden"
    assert table_counts(api.db) == before


def test_runner_only_endpoints_refuse_ci_tokens(api: Api) -> None:
    for path in ("/api/v1/jobs/claim?wait=0", "/api/v1/runners/heartbeat", "/api/v1/jobs/1/lease"):
        resp = api.client.post(path, json={}, headers=api.ci)
        assert resp.status_code == 403, (path, resp.text)


def test_missing_and_unknown_tokens_are_401(api: Api) -> None:
    for headers in ({}, bearer("bch_not-a-token"), {"Authorization": "Basic abc"}):
        resp = api.client.post("/api/v1/results", json=batch(), headers=headers)
        assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer"


def test_revocation_takes_effect_at_once(api: Api) -> None:
    assert api.ingest(batch(key="before"), headers=api.ci).status_code == 201
    with api.db.transaction() as session:
        row = session.scalars(
            select(ApiToken).where(ApiToken.token_hash == hash_token(token_of(api.ci)))
        ).one()
        assert revoke_token(session, row.id)
    resp = api.ingest(batch(key="after"), headers=api.ci)
    assert resp.status_code == 401 and resp.json()["error"] == "unauthorized"


def test_a_re_registered_runner_s_old_token_stops_working(api: Api) -> None:
    first = register_runner(api.client, api.db, "r1")
    assert api.client.post("/api/v1/runners/heartbeat", json={}, headers=first["headers"]).status_code == 200
    register_runner(api.client, api.db, "r1")
    assert api.client.post("/api/v1/runners/heartbeat", json={}, headers=first["headers"]).status_code == 401


def test_only_token_hashes_are_stored(api: Api) -> None:
    tokens = {token_of(h) for h in (api.admin, api.runner, api.ci)}
    with api.db.read_only() as session:
        rows = session.scalars(select(ApiToken)).all()
        stored = {str(getattr(r, c.key)) for r in rows for c in ApiToken.__table__.columns}
    assert not tokens & stored
    assert {hash_token(t) for t in tokens} <= stored


def last_used(api: Api, headers: dict[str, str]) -> object:
    with api.db.read_only() as session:
        return session.scalars(
            select(ApiToken.last_used_at).where(ApiToken.token_hash == hash_token(token_of(headers)))
        ).one()


def test_last_used_at_is_written_on_use_at_most_once_a_minute(api: Api) -> None:
    assert last_used(api, api.ci) is None
    assert api.ingest(batch(key="one"), headers=api.ci).status_code == 201
    first = last_used(api, api.ci)
    assert first is not None
    assert api.ingest(batch(key="two"), headers=api.ci).status_code == 201
    assert last_used(api, api.ci) == first  # within the minute: no second write
    # a minute later it moves on
    with api.db.transaction() as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.token_hash == hash_token(token_of(api.ci)))
            .values(last_used_at=utcnow() - LAST_USED_RESOLUTION - timedelta(seconds=1))
        )
    assert api.ingest(batch(key="three"), headers=api.ci).status_code == 201
    later = last_used(api, api.ci)
    assert isinstance(later, type(first)) and later > first  # type: ignore[operator]
    # an unused token stays unused
    assert last_used(api, api.admin) is None
