"""Series, commit comparison, listings, paging and export, over HTTP on both databases."""

from __future__ import annotations

import csv
import io
from typing import Any

from tests.bench_server.conftest import Api, batch, result


def sha(n: int) -> str:
    return f"{n:040x}"


def post_history(
    api: Api, values: list[float], metric: str = "output_throughput", **result_over: Any
) -> None:
    """A linear history c1 <- c2 <- ... with one result per commit; sent newest first on purpose."""
    for i in reversed(range(1, len(values) + 1)):
        parents = [sha(i - 1)] if i > 1 else []
        body = batch(f"{metric}-{i}", sha(i), results=[result(metric, values[i - 1], **result_over)])
        body["commit"] = {
            "sha": sha(i),
            "branch": "main",
            "parents": parents,
            "committed_at": f"2026-01-{i:02d}T00:00:00Z",
        }
        assert api.ingest(body).status_code == 201


def post_in_order(api: Api, values: list[float], key: str = "k") -> None:
    for i, v in enumerate(values, 1):
        body = batch(f"{key}-{i}", sha(i), results=[result(value=v, samples=[v - 1, v + 1])])
        body["commit"] = {"sha": sha(i), "branch": "main", "parents": [sha(i - 1)] if i > 1 else []}
        assert api.ingest(body).status_code == 201


SERIES = {
    "project": "exo",
    "benchmark": "gemma-270m-128x64",
    "metric": "output_throughput",
    "hardware_class": "cpu-x86_64",
}


def test_series_follows_first_parent_order_and_averages_reruns(api: Api) -> None:
    post_in_order(api, [100.0, 110.0, 90.0])
    # A rerun on commit 2 on another machine of the same class.
    rerun = batch("rerun", sha(2), results=[result(value=130.0)])
    rerun["machine"]["fingerprint"] = {"cpu": "EPYC", "cores": 4}
    assert api.ingest(rerun).status_code == 201

    r = api.client.get("/api/v1/series", params={**SERIES, "samples": "true"})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["length"] == 3
    assert data["commits"] == [sha(1), sha(2), sha(3)]
    assert data["values"] == [100.0, 120.0, 90.0]
    assert data["n"] == [1, 2, 1]
    assert data["samples"] == [[99.0, 101.0], [109.0, 111.0, 130.0], [89.0, 91.0]]
    assert data["order"] == sorted(data["order"])
    assert data["metric"] == {"name": "output_throughput", "unit": "tok/s", "direction": "higher"}


def test_series_order_survives_out_of_order_arrival_when_parents_are_known(api: Api) -> None:
    # Parents first is the normal case; a child that arrives before its parent goes after
    # everything seen so far, which is still the right order for a linear history posted in reverse
    # only when parents are known. Post 1, then 3 (parent 2 unknown), then 2.
    post_in_order(api, [1.0], key="a")
    for i, v in ((3, 3.0), (2, 2.0)):
        body = batch(f"b-{i}", sha(i), results=[result(value=v)])
        body["commit"] = {"sha": sha(i), "branch": "main", "parents": [sha(i - 1)]}
        assert api.ingest(body).status_code == 201
    commits = api.client.get("/api/v1/series", params=SERIES).json()["commits"]
    assert commits[0] == sha(1)
    assert set(commits) == {sha(1), sha(2), sha(3)}


def test_series_errors_name_the_parameter(api: Api) -> None:
    post_in_order(api, [1.0])
    r = api.client.get("/api/v1/series", params={**SERIES, "metric": "nope"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "metric"
    r = api.client.get("/api/v1/series", params={k: v for k, v in SERIES.items() if k != "hardware_class"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "hardware_class"
    # Two parameter sets under one name: the caller must pick one.
    assert api.ingest(batch("other", sha(1), results=[result(params={"isl": 1024})])).status_code == 201
    r = api.client.get("/api/v1/series", params=SERIES)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "params_hash"


def test_commit_is_compared_with_its_first_parent(api: Api) -> None:
    post_in_order(api, [100.0, 80.0])
    ttft = [result("mean_ttft_ms", 50.0, unit="ms", direction="lower")]
    assert api.ingest(batch("t1", sha(1), results=ttft)).status_code == 201
    ttft2 = [result("mean_ttft_ms", 40.0, unit="ms", direction="lower")]
    assert api.ingest(batch("t2", sha(2), results=ttft2)).status_code == 201
    fail = batch(
        "f2",
        sha(2),
        results=[],
        failures=[
            {
                "suite": "serving",
                "benchmark": "gemma-270m-8192x1024",
                "failure_class": "timeout",
                "message": "no answer in 600 s",
            }
        ],
    )
    assert api.ingest(fail).status_code == 201

    data = api.client.get(f"/api/v1/commits/{sha(2)}", params={"project": "exo"}).json()
    ambiguous = api.client.get(f"/api/v1/commits/{sha(2)[:10]}", params={"project": "exo"})
    assert ambiguous.status_code == 422 and ambiguous.json()["detail"][0]["field"] == "sha"
    assert data["commit"]["sha"] == sha(2) and data["baseline"]["sha"] == sha(1)
    by_metric = {r["metric"]: r for r in data["results"]}
    tput = by_metric["output_throughput"]
    assert (tput["value"], tput["baseline_value"]) == (80.0, 100.0)
    assert abs(tput["change"] - (-0.2)) < 1e-12 and tput["improved"] is False
    assert by_metric["mean_ttft_ms"]["improved"] is True  # lower is better
    assert [f["failure_class"] for f in data["failures"]] == ["timeout"]

    first = api.client.get(f"/api/v1/commits/{sha(1)}", params={"project": "exo"}).json()
    assert first["baseline"] is None and first["results"][0]["change"] is None
    assert api.client.get(f"/api/v1/commits/{'f' * 40}", params={"project": "exo"}).status_code == 404


def test_cursor_paging_visits_every_row_once(api: Api) -> None:
    assert api.ingest(batch(results=[result(f"m{i:02d}", float(i)) for i in range(25)])).status_code == 201
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 10, "project": "exo"}
        if cursor:
            params["cursor"] = cursor
        page = api.client.get("/api/v1/results", params=params).json()
        seen += [x["id"] for x in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == 3
    assert len(seen) == 25 and len(set(seen)) == 25 and seen == sorted(seen, reverse=True)
    bad = api.client.get("/api/v1/results", params={"cursor": "garbage!"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "cursor"


def test_csv_and_json_export_stream_the_whole_listing(api: Api) -> None:
    assert api.ingest(batch(results=[result(f"m{i:04d}", float(i)) for i in range(2500)])).status_code == 201
    r = api.client.get("/api/v1/results", params={"format": "csv", "project": "exo"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 2500
    assert {float(x["value"]) for x in rows} == {float(i) for i in range(2500)}
    assert rows[0]["params"] == '{"concurrency":4,"isl":128,"osl":64}'  # stored key-sorted

    by_accept = api.client.get("/api/v1/metrics", headers={"Accept": "text/csv"})
    assert by_accept.headers["content-type"].startswith("text/csv")
    assert by_accept.text.splitlines()[0] == "id,name,unit,direction"
    assert len(by_accept.text.splitlines()) == 2501

    as_json = api.client.get("/api/v1/results", params={"format": "json", "metric": "m0007"}).json()
    assert [x["value"] for x in as_json] == [7.0]
    assert api.client.get("/api/v1/results", params={"format": "xml"}).status_code == 422


def test_catalog_listings(api: Api) -> None:
    assert api.ingest(batch()).status_code == 201
    hw = api.client.get("/api/v1/hardware", params={"limit": 100}).json()["items"]
    assert {"cpu-x86_64", "dgx-spark", "h100-sxm", "mac-studio-m3-ultra"} <= {h["name"] for h in hw}
    benches = api.client.get("/api/v1/benchmarks").json()["items"]
    assert [(b["suite"], b["name"]) for b in benches] == [("serving", "gemma-270m-128x64")]
    assert len(benches[0]["params_hash"]) == 64
    machines = api.client.get("/api/v1/machines").json()["items"]
    assert machines[0]["fingerprint"] == {"cpu": "EPYC", "cores": 2}
    commits = api.client.get("/api/v1/commits", params={"project": "exo"}).json()["items"]
    assert [c["sha"] for c in commits] == ["a" * 40]
    r = api.client.post("/api/v1/hardware", json={"name": "mi300x"}, headers=api.admin)
    assert r.status_code == 201
    assert api.client.post("/api/v1/hardware", json={"name": "mi300x"}, headers=api.admin).status_code == 409


def test_health_openapi_and_dashboard(api: Api) -> None:
    assert api.client.get("/api/v1/health").json()["status"] == "ok"
    spec = api.client.get("/api/v1/openapi.json").json()
    assert {"/api/v1/results", "/api/v1/series", "/api/v1/commits/{sha}"} <= set(spec["paths"])
    assert api.client.get("/docs").status_code == 200
    post_in_order(api, [1.0, 2.0])
    home = api.client.get("/")
    assert home.status_code == 200 and "gemma-270m-128x64" in home.text
    link = home.text.split('href="/series?')[1].split('"')[0]
    page = api.client.get("/series?" + link.replace("&amp;", "&"))
    # The figure travels as JSON drawn by a served script (no inline script: see web/security.py).
    assert (
        page.status_code == 200 and 'class="plotly-figure"' in page.text and "/static/plots.js" in page.text
    )
    assert api.client.get("/static/plotly.min.js").status_code == 200
