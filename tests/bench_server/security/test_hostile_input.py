"""Hostile input answers a 4xx that names the field, and leaves the database as it was."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.bench_server.conftest import Api, batch, result
from tests.bench_server.jobs.helpers import register_runner
from tests.bench_server.security.conftest import table_counts

MAX_BIGINT = 2**63 - 1


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def post_raw(api: Api, body: dict[str, Any]) -> Any:
    """json.dumps writes NaN and Infinity as Python's json module reads them back."""
    return api.client.post(
        "/api/v1/results",
        content=json.dumps(body),
        headers={**api.runner, "content-type": "application/json"},
    )


def refused_naming(resp: Any, field: str, status: int = 422) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error", "detail"}
    assert field in json.dumps(body["detail"]), body


NAN = float("nan")
INF = float("inf")

HOSTILE_BATCHES = [
    ("nan in params", batch(results=[result(params={"x": NAN})]), "results.0.params"),
    ("inf in params", batch(results=[result(params={"x": [1, -INF]})]), "results.0.params"),
    ("nan in fingerprint", batch(machine={"hardware_class": "cpu-x86_64", "fingerprint": {"x": NAN}}),
     "machine.fingerprint"),
    ("infinity in context", batch(context={"x": INF}), "context"),
    ("job_id of 2^63", batch(job_id=2**63), "job_id"),
    ("nested 300 levels", batch(context=nested(300)), "context"),
    ("nested params", batch(results=[result(params=nested(40))]), "results.0.params"),
    ("integer over 64 bits in context", batch(context={"n": 2**64}), "context"),
    ("NUL in a context string", batch(context={"s": "a\x00b"}), "context"),
    ("NUL in a context key", batch(context={"a\x00": 1}), "context"),
    ("NUL in metric", batch(results=[result(metric="tok\x00s")]), "results.0.metric"),
    ("NUL in suite", batch(results=[result(suite="ser\x00ving")]), "results.0.suite"),
    ("NUL in unit", batch(results=[result(unit="tok/\x00s")]), "results.0.unit"),
    ("control char in metric", batch(results=[result(metric="tok\x1bs")]), "results.0.metric"),
    ("NUL in branch", batch(commit={"sha": "a" * 40, "branch": "ma\x00in"}), "commit.branch"),
    ("newline in branch", batch(commit={"sha": "a" * 40, "branch": "ma\nin"}), "commit.branch"),
    ("NUL in commit message", batch(commit={"sha": "a" * 40, "message": "fix\x00"}), "commit.message"),
    ("NUL in author", batch(commit={"sha": "a" * 40, "author": "a\x00"}), "commit.author"),
    ("NUL in hostname", batch(machine={"hardware_class": "cpu-x86_64", "hostname": "h\x00"}),
     "machine.hostname"),
    ("NUL in idempotency key", batch(key="k\x00"), "idempotency_key"),
    ("newline in idempotency key", batch(key="k\n1"), "idempotency_key"),
    ("NUL in failure message",
     batch(results=[], failures=[{"suite": "s", "failure_class": "crash", "message": "boom\x00"}]),
     "failures.0.message"),
    ("NUL in log excerpt",
     batch(results=[], failures=[{"suite": "s", "failure_class": "crash", "message": "m",
                                  "log_excerpt": "\x00"}]),
     "failures.0.log_excerpt"),
    ("NUL in a stats key", batch(results=[result(stats={"p\x0099": 1.0})]), "results.0.stats"),
    ("huge cluster count", batch(machine={"hardware_class": "99999999999999999999x cpu-x86_64"}),
     "machine.hardware_class"),
    ("cluster count over the bound", batch(machine={"hardware_class": "100001x cpu-x86_64"}),
     "machine.hardware_class"),
    ("zero cluster count", batch(machine={"hardware_class": "0x cpu-x86_64"}), "machine.hardware_class"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "body", "field"), HOSTILE_BATCHES, ids=[c[0] for c in HOSTILE_BATCHES])
def test_hostile_ingest_is_a_4xx_naming_the_field_and_stores_nothing(
    api: Api, case: str, body: dict[str, Any], field: str
) -> None:
    before = table_counts(api.db)
    refused_naming(post_raw(api, body), field)
    assert table_counts(api.db) == before
    # and every listing still answers
    for path in ("/api/v1/hardware", "/api/v1/results", "/api/v1/machines", "/api/v1/benchmarks"):
        assert api.client.get(path).status_code == 200, path


def test_a_huge_cluster_class_cannot_break_the_hardware_listing(api: Api) -> None:
    api.ingest(batch(machine={"hardware_class": "99999999999999999999x cpu-x86_64", "fingerprint": {}}))
    resp = api.client.get("/api/v1/hardware")
    assert resp.status_code == 200, resp.text
    assert all(hw["accelerators"] <= MAX_BIGINT for hw in resp.json()["items"])


def test_a_valid_cluster_is_still_created(api: Api) -> None:
    resp = api.ingest(batch(machine={"hardware_class": "4x cpu-x86_64", "fingerprint": {}}))
    assert resp.status_code == 201, resp.text
    names = [hw["name"] for hw in api.client.get("/api/v1/hardware").json()["items"]]
    assert "4x cpu-x86_64" in names


BIG = str(2**70)


def forged_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(f"id:{value}".encode()).decode().rstrip("=")


URLS = [
    (f"/api/v1/jobs/{BIG}", "job_id"),
    (f"/api/v1/jobs/{MAX_BIGINT + 1}", "job_id"),
    (f"/api/v1/runs/{BIG}", "run_id"),
    (f"/api/v1/jobs?run_id={BIG}", "run_id"),
    (f"/api/v1/jobs?run_id=-{BIG}", "run_id"),
    (f"/api/v1/results?cursor={forged_cursor(BIG)}", "cursor"),
    (f"/api/v1/results?cursor={forged_cursor('-5')}", "cursor"),
    (f"/api/v1/jobs?cursor={forged_cursor(BIG)}", "cursor"),
    (f"/api/v1/hardware?cursor={forged_cursor(BIG)}", "cursor"),
    (f"/api/v1/results?cursor={'A' * 5000}", "cursor"),
    ("/api/v1/results?commit=%25", "commit"),
    ("/api/v1/results?commit=_", "commit"),
    ("/api/v1/failures?commit=a%25", "commit"),
    ("/api/v1/jobs?sha=%25", "sha"),
    ("/api/v1/runs?project=exo&sha=_", "sha"),
    ("/api/v1/results?project=%00", "project"),
    ("/api/v1/jobs?suite=a%00b", "suite"),
    ("/api/v1/machines?hardware_class=%00", "hardware_class"),
    ("/api/v1/results?until=0.5", "until"),
    ("/api/v1/results?since=1700000000", "since"),
]


@pytest.mark.parametrize(("url", "field"), URLS)
def test_hostile_urls_are_a_4xx_naming_the_parameter(api: Api, url: str, field: str) -> None:
    refused_naming(api.client.get(url), field)


def test_a_benchmark_id_over_64_bits_in_a_series_is_a_422(api: Api) -> None:
    url = f"/api/v1/series?project=exo&metric=m&hardware_class=cpu-x86_64&benchmark_id={BIG}"
    refused_naming(api.client.get(url), "benchmark_id")


def test_big_integers_in_the_paths_of_writes_are_a_422(api: Api) -> None:
    runner = register_runner(api.client, api.db, "r1")["headers"]
    for path in ("lease", "start", "finish", "release"):
        resp = api.client.post(f"/api/v1/jobs/{BIG}/{path}", json={"state": "succeeded"}, headers=runner)
        refused_naming(resp, "job_id")
    refused_naming(api.client.post(f"/api/v1/jobs/{BIG}/cancel", headers=api.admin), "job_id")
    refused_naming(api.client.put(f"/api/v1/jobs/{BIG}/log", content=b"x", headers=runner), "job_id")


def test_like_wildcards_in_a_commit_filter_match_nothing_by_accident(api: Api) -> None:
    assert api.ingest(batch()).status_code == 201
    assert len(api.client.get("/api/v1/results?commit=aaaa").json()["items"]) == 1
    assert len(api.client.get("/api/v1/results?commit=AAAA").json()["items"]) == 1  # hex, any case


def test_an_empty_format_is_the_default_json_page(api: Api) -> None:
    resp = api.client.get("/api/v1/results?format=")
    assert resp.status_code == 200, resp.text
    assert set(resp.json()) == {"items", "next_cursor"}


def test_iso_datetimes_still_filter(api: Api) -> None:
    assert api.ingest(batch()).status_code == 201
    assert len(api.client.get("/api/v1/results?since=2000-01-01T00:00:00Z").json()["items"]) == 1
    assert api.client.get("/api/v1/results?until=2000-01-01").json()["items"] == []


def test_unicode_and_sql_metacharacters_are_stored_as_text(api: Api) -> None:
    evil = "'; DROP TABLE results; -- ✓ 東京 🚀"
    body = batch(
        commit={"sha": "a" * 40, "branch": "feature/" + evil, "message": evil + "\n\nbody", "author": evil},
        results=[result(benchmark=evil, metric="tok_s " + evil, params={evil: evil})],
        context={"note": evil},
    )
    assert api.ingest(body).status_code == 201
    items = api.client.get("/api/v1/results", params={"benchmark": evil}).json()["items"]
    assert [(i["benchmark"], i["metric"], i["branch"]) for i in items] == [
        (evil, "tok_s " + evil, "feature/" + evil)
    ]
    assert api.client.get("/api/v1/results", params={"project": "x' OR '1'='1"}).json()["items"] == []


def test_oversized_bodies_and_huge_sample_arrays_store_nothing(database_url: str) -> None:
    from fastapi.testclient import TestClient

    from bench_server.app import create_app
    from bench_server.kit.settings import Settings
    from tests.bench_server.conftest import make_api

    api = make_api(database_url, max_body_bytes=64 * 1024)
    small = TestClient(api.client.app, raise_server_exceptions=False)
    default = TestClient(
        create_app(Settings(database_url=database_url, environment="test"), db=api.db),
        raise_server_exceptions=False,
    )
    before = table_counts(api.db)
    resp = small.post(
        "/api/v1/results", json=batch(results=[result(samples=[1.0] * 50_000)]), headers=api.runner
    )
    assert resp.status_code == 413 and resp.json()["error"] == "payload_too_large"
    too_many = batch(results=[result(samples=[1.0] * 1_000_001)])
    refused_naming(default.post("/api/v1/results", json=too_many, headers=api.runner), "results.0.samples")
    assert table_counts(api.db) == before
    api.db.engine.dispose()
