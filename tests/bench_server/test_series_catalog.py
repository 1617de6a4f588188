"""The series catalog that ingest keeps, and the admin API for a hardware class's power and price."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from bench_server.history import service as history
from tests.bench_server.conftest import Api, batch, result
from tests.bench_server.test_history import SERIES, sha


def ingest_at(
    api: Api, key: str, n: int, values: list[float], parents: list[str] | None = None, **over: Any
) -> None:
    body = batch(key, sha(n), results=[result(value=v) for v in values], **over)
    body["commit"] = {"sha": sha(n), "branch": "main", "parents": parents if parents is not None else []}
    r = api.ingest(body)
    assert r.status_code == 201, r.text


def catalog(api: Api, **params: Any) -> list[dict[str, Any]]:
    r = api.client.get("/api/v1/series-catalog", params={"project": "exo", **params})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def test_ingest_keeps_the_catalog_equal_to_the_series(api: Api) -> None:
    other = [result("mean_ttft_ms", 5.0, unit="ms", direction="lower")]
    for n in (1, 2):  # commits 1 and 2 carry another metric only
        body = batch(f"o{n}", sha(n), results=other)
        body["commit"] = {"sha": sha(n), "branch": "main", "parents": [sha(n - 1)] if n > 1 else []}
        assert api.ingest(body).status_code == 201
    ingest_at(api, "c3", 3, [110.0], parents=[sha(2)])
    ingest_at(api, "c4", 4, [90.0, 94.0], parents=[sha(3)])  # two results in one batch
    # A commit branching off commit 1 arrives last: in first-parent order it comes first.
    ingest_at(api, "c5", 5, [100.0], parents=[sha(1)])
    rerun = batch("c4-rerun", sha(4), results=[result(value=96.0)])
    rerun["commit"] = {"sha": sha(4), "branch": "main", "parents": [sha(3)]}
    rerun["machine"]["fingerprint"] = {"cpu": "EPYC", "cores": 4}  # same class, another machine
    assert api.ingest(rerun).status_code == 201
    again = batch("c4", sha(4), results=[result(value=v) for v in (90.0, 94.0)])
    again["commit"] = {"sha": sha(4), "branch": "main", "parents": [sha(3)]}
    assert api.ingest(again).status_code == 200  # a duplicate batch changes nothing

    entry = next(e for e in catalog(api) if e["metric"] == "output_throughput")
    series = api.client.get("/api/v1/series", params=SERIES).json()
    assert series["commits"] == [sha(5), sha(3), sha(4)]
    assert entry["point_count"] == series["length"] == 3
    assert (entry["first_sha"], entry["last_sha"]) == (sha(5), sha(4))
    assert entry["last_value"] == series["values"][-1] == (90.0 + 94.0 + 96.0) / 3
    assert entry["result_count"] == sum(series["n"]) == 5
    assert (entry["suite"], entry["benchmark"], entry["hardware_class"]) == (
        "serving",
        "gemma-270m-128x64",
        "cpu-x86_64",
    )
    with api.db.read_only() as session:
        rows = history.catalog(session, history.find_project(session, "exo"), metric="output_throughput")
    assert [(r["first_sha"], r["last_sha"], r["point_count"]) for r in rows] == [(sha(5), sha(4), 3)]


def test_catalog_is_per_branch_hardware_and_metric_and_filters(api: Api) -> None:
    ingest_at(api, "a", 1, [1.0])
    other = batch(
        "b", sha(2), results=[result(value=2.0), result("mean_ttft_ms", 5.0, unit="ms", direction="lower")]
    )
    other["commit"] = {"sha": sha(2), "branch": "feature"}
    other["machine"]["hardware_class"] = "2x cpu-x86_64"  # a cluster class, created on first use
    assert api.ingest(other).status_code == 201
    assert len(catalog(api)) == 3
    assert [e["metric"] for e in catalog(api, branch="feature", metric="mean_ttft_ms")] == ["mean_ttft_ms"]
    assert {e["hardware_class"] for e in catalog(api, hardware_class="2x cpu-x86_64")} == {"2x cpu-x86_64"}
    # The old index (the first dashboard) reads the catalog too.
    with api.db.read_only() as session:
        assert len(history.series_index(session)) == 3


def test_a_failed_batch_leaves_the_catalog_untouched(api: Api) -> None:
    ingest_at(api, "a", 1, [1.0])
    bad = batch("bad", sha(2), results=[result(value=2.0), result(value=3.0, unit="ms")])  # unit clash
    assert api.ingest(bad).status_code == 422
    [entry] = catalog(api)
    assert (entry["point_count"], entry["last_value"]) == (1, 1.0)


def test_hardware_costs_need_an_admin_and_show_in_the_listing(api: Api) -> None:
    ingest_at(api, "a", 1, [1.0], machine={"hardware_class": "1x dgx-spark + 2x cpu-x86_64"})
    name = "2x cpu-x86_64 + 1x dgx-spark"
    url = f"/api/v1/hardware/{quote(name)}/costs"
    body = {"power_w": 950.0, "price_per_hour": 4.5}
    assert api.client.put(url, json=body).status_code == 401
    assert api.client.put(url, json=body, headers=api.runner).status_code == 403
    r = api.client.put(url, json=body, headers=api.admin)
    assert r.status_code == 200, r.text
    assert (r.json()["power_w"], r.json()["price_per_hour"]) == (950.0, 4.5)
    listed = {h["name"]: h for h in api.client.get("/api/v1/hardware", params={"limit": 100}).json()["items"]}
    assert (listed[name]["power_w"], listed[name]["price_per_hour"]) == (950.0, 4.5)
    assert listed["dgx-spark"]["power_w"] is None
    assert api.client.put("/api/v1/hardware/nope/costs", json=body, headers=api.admin).status_code == 404
    assert api.client.put(url, json={"power_w": -1}, headers=api.admin).status_code == 422
    assert api.client.put(url, json={"watts": 1}, headers=api.admin).status_code == 422
    cleared = api.client.put(url, json={"power_w": None}, headers=api.admin).json()
    assert (cleared["power_w"], cleared["price_per_hour"]) == (None, None)
