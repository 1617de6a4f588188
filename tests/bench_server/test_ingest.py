"""Batch ingest over HTTP on PostgreSQL and SQLite: idempotency, all-or-nothing, bad input."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from sqlalchemy import func, select

from bench_server import models
from tests.bench_server.conftest import Api, batch, make_api, result

COUNTED = [
    models.IngestBatch,
    models.Result,
    models.Failure,
    models.Commit,
    models.Machine,
    models.Benchmark,
    models.Metric,
    models.HardwareClass,
    models.Project,
]


def snapshot(api: Api) -> dict[str, int]:
    with api.db.read_only() as s:
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m)) or 0 for m in COUNTED}


def test_ingest_stores_results_and_failures(api: Api) -> None:
    body = batch(
        results=[
            result(),
            result(
                "mean_ttft_ms", 41.5, unit="ms", direction="lower", samples=[40.0, 43.0], stats={"p99": 43.0}
            ),
        ],
        failures=[
            {
                "suite": "serving",
                "benchmark": "gemma-270m-1024x1024",
                "failure_class": "oom",
                "message": "killed by the OOM killer",
                "log_excerpt": "Killed",
            }
        ],
    )
    r = api.ingest(body)
    assert r.status_code == 201, r.text
    assert r.json() == {"batch_id": r.json()["batch_id"], "duplicate": False, "results": 2, "failures": 1}

    listed = api.client.get("/api/v1/results", params={"project": "exo", "samples": "true"}).json()["items"]
    assert {(x["metric"], x["value"]) for x in listed} == {
        ("output_throughput", 100.0),
        ("mean_ttft_ms", 41.5),
    }
    ttft = next(x for x in listed if x["metric"] == "mean_ttft_ms")
    assert ttft["samples"] == [40.0, 43.0] and ttft["stats"] == {"p99": 43.0} and ttft["direction"] == "lower"
    failures = api.client.get("/api/v1/failures", params={"project": "exo"}).json()["items"]
    assert [(f["failure_class"], f["benchmark"]) for f in failures] == [("oom", "gemma-270m-1024x1024")]


def test_same_key_same_body_is_a_duplicate_and_stores_nothing(api: Api) -> None:
    assert api.ingest(batch()).status_code == 201
    before = snapshot(api)
    again = api.ingest(batch())
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert snapshot(api) == before


def test_same_key_other_body_is_a_conflict(api: Api) -> None:
    assert api.ingest(batch()).status_code == 201
    before = snapshot(api)
    r = api.ingest(batch(results=[result(value=99.0)]))
    assert r.status_code == 409
    assert r.json()["error"] == "idempotency_conflict"
    assert snapshot(api) == before


def test_one_bad_value_rejects_the_whole_batch(api: Api) -> None:
    results = [result(f"m{i}", float(i)) for i in range(10)]
    results[5]["value"] = "fast"
    before = snapshot(api)
    r = api.ingest(batch(results=results))
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "results.5.value"
    assert snapshot(api) == before


def _raw(api: Api, text: str) -> Any:
    return api.client.post(
        "/api/v1/results", content=text, headers={**api.runner, "Content-Type": "application/json"}
    )


BAD_INPUT: list[tuple[str, Any, int, str]] = [
    ("unknown direction", batch(results=[result(direction="up")]), 422, "results.0.direction"),
    ("NaN", batch(results=[result(value=float("nan"))]), 422, "results.0.value"),
    ("infinity", batch(results=[result(value=float("inf"))]), 422, "results.0.value"),
    ("infinite sample", batch(results=[result(samples=[1.0, float("-inf")])]), 422, "results.0.samples.1"),
    (
        "negative duration",
        batch(results=[result("ttft", -1.0, unit="ms", direction="lower")]),
        422,
        "results.0",
    ),
    ("empty batch", batch(results=[]), 422, "body"),
    ("string value", batch(results=[result(value="12.5")]), 422, "results.0.value"),  # type: ignore[arg-type]
    ("list as params", batch(results=[result(params=[1, 2])]), 422, "results.0.params"),
    ("unknown field", batch(results=[result(colour="red")]), 422, "results.0.colour"),
    (
        "missing metric",
        batch(results=[{k: v for k, v in result().items() if k != "metric"}]),
        422,
        "results.0.metric",
    ),
    ("bad sha", batch(sha="not-a-sha"), 422, "commit.sha"),
    ("unknown hardware class", batch(machine={"hardware_class": "tpu-v9"}), 422, "machine.hardware_class"),
    (
        "cluster of unknown class",
        batch(machine={"hardware_class": "2x dgx-spark + 1x tpu-v9"}),
        422,
        "machine.hardware_class",
    ),
    ("unknown project", batch(project="nope"), 422, "project"),
    ("unknown job", batch(job_id=999), 422, "job_id"),
    (
        "unknown failure class",
        batch(results=[], failures=[{"suite": "s", "failure_class": "gremlins", "message": "x"}]),
        422,
        "failures.0.failure_class",
    ),
    ("one metric two units", batch(results=[result(), result(unit="req/s")]), 422, "results"),
]


@pytest.mark.parametrize(
    ("body", "status", "field"), [b[1:] for b in BAD_INPUT], ids=[b[0] for b in BAD_INPUT]
)
def test_bad_input_is_a_4xx_naming_the_field_and_stores_nothing(
    api: Api, body: dict[str, Any], status: int, field: str
) -> None:
    before = snapshot(api)
    r = _raw(api, json.dumps(body))  # json.dumps writes NaN/Infinity as a careless client would
    assert r.status_code == status, r.text
    err = r.json()
    assert set(err) == {"error", "detail"}
    fields = [d["field"] for d in err["detail"]]
    assert any(f == field or f.startswith(field + ".") for f in fields), (field, err)
    assert snapshot(api) == before


def test_unit_mismatch_with_stored_metric(api: Api) -> None:
    assert api.ingest(batch()).status_code == 201
    before = snapshot(api)
    r = api.ingest(batch("k2", results=[result(unit="tokens/min")]))
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "results.0.unit"
    r = api.ingest(batch("k3", results=[result(direction="lower")]))
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "results.0.direction"
    assert snapshot(api) == before


def test_malformed_json_and_wrong_top_level_type(api: Api) -> None:
    before = snapshot(api)
    assert _raw(api, "{not json").status_code == 422
    r = _raw(api, "[1, 2]")
    assert r.status_code == 422 and r.json()["error"] == "validation_error"
    assert snapshot(api) == before


def test_oversized_body_is_413(database_url: str) -> None:
    small = make_api(database_url, max_body_bytes=2000)
    with small.client:
        before = snapshot(small)
        body = batch(results=[result(f"m{i}") for i in range(40)])
        r = small.ingest(body)
        assert r.status_code == 413
        assert r.json()["error"] == "payload_too_large"
        # A chunked body with no Content-Length is counted as it arrives.
        chunks = iter([json.dumps(body).encode()[i : i + 500] for i in range(0, len(json.dumps(body)), 500)])
        r = small.client.post(
            "/api/v1/results", content=chunks, headers={**small.runner, "Content-Type": "application/json"}
        )
        assert r.status_code == 413
        assert snapshot(small) == before
        assert small.ingest(batch()).status_code == 201
    small.db.engine.dispose()


def test_cluster_hardware_class_is_canonical(api: Api) -> None:
    r = api.ingest(
        batch(
            machine={
                "hardware_class": "1x dgx-spark + 2x mac-studio-m3-ultra",
                "fingerprint": {"members": ["a", "b", "c"]},
            }
        )
    )
    assert r.status_code == 201, r.text
    hw = {h["name"]: h for h in api.client.get("/api/v1/hardware", params={"limit": 1000}).json()["items"]}
    cluster = hw["1x dgx-spark + 2x mac-studio-m3-ultra"]
    assert cluster["kind"] == "cluster"
    assert cluster["members"] == [
        {"class": "dgx-spark", "count": 1},
        {"class": "mac-studio-m3-ultra", "count": 2},
    ]
    assert cluster["accelerators"] == 3
    # Another spelling of the same composition lands on the same class.
    r = api.ingest(batch("k2", machine={"hardware_class": "2x mac-studio-m3-ultra + 1x dgx-spark"}))
    assert r.status_code == 201
    rows = api.client.get("/api/v1/results", params={"project": "exo"}).json()["items"]
    assert {x["hardware_class"] for x in rows} == {"1x dgx-spark + 2x mac-studio-m3-ultra"}


def test_writes_need_the_right_scope_and_reads_are_public(api: Api) -> None:
    assert api.client.post("/api/v1/results", json=batch()).status_code == 401
    r = api.client.post("/api/v1/results", json=batch(), headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    assert api.ingest(batch(), headers=api.ci).status_code == 201
    project = {"slug": "other"}
    assert api.client.post("/api/v1/projects", json=project, headers=api.runner).status_code == 403
    assert api.client.post("/api/v1/projects", json=project, headers=api.admin).status_code == 201
    assert api.client.get("/api/v1/projects").status_code == 200


def test_concurrent_posts_of_one_key_store_once(pg_database: str) -> None:
    api = make_api(pg_database)
    body = batch(results=[result(f"m{i}", float(i)) for i in range(200)])
    codes: list[int] = []
    barrier = threading.Barrier(6)

    def post() -> None:
        barrier.wait()
        codes.append(api.ingest(body).status_code)

    with api.client:
        threads = [threading.Thread(target=post) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(codes) == [200] * 5 + [201]
        counts = snapshot(api)
        assert counts["results"] == 200 and counts["ingest_batches"] == 1
    api.db.engine.dispose()
