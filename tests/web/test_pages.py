"""The website's pages over HTTP (both databases): each renders, links are encoded, everything
user-supplied stays escaped, unknown things are 404 pages, and triage needs a signed-in admin
with the form's CSRF token."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from tests.bench_server.conftest import Api, batch
from tests.web.seed import (
    CLUSTER,
    EVIL_BENCHMARK,
    EVIL_HARDWARE,
    EVIL_LOG,
    EVIL_MESSAGE,
    EVIL_METRIC,
    EVIL_RUNNER,
    EVIL_STRINGS,
    FAILURE_AT,
    PROJECT,
    REGRESSION_AT,
    SIZES,
    Seeded,
    page_urls,
    seed,
    sha,
)

HTML = {"accept": "text/html"}
# Raw markup that must never reach a page as markup (only escaped, or \u-escaped inside JSON).
RAW = ("<script>alert", "<img src=x", "<b onmouseover", "<i>feature", "<b>x</b>", "<u>u</u>", "<b>gpu</b>")


def get(site: Seeded, path: str) -> Any:
    r = site.api.client.get(path, headers=HTML)
    return r


def figures(body: str) -> list[dict[str, Any]]:
    """The figure specs a page embeds, parsed as the browser's JSON.parse would."""
    blocks = re.findall(
        r'<script type="application/json" class="plotly-figure"[^>]*>(.*?)</script>', body, re.S
    )
    return [json.loads(b) for b in blocks]


def test_every_page_renders_with_the_security_headers(site: Seeded) -> None:
    for name, path in page_urls(site).items():
        r = get(site, path)
        assert r.status_code == 200, (name, r.text[:2000])
        assert r.headers["content-type"].startswith("text/html"), name
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        body = r.text
        # Only scripts this server serves, and no inline script: figures are JSON data.
        scripts = re.findall(r"<script\b([^>]*)>", body)
        for attrs in scripts:
            assert 'type="application/json"' in attrs or re.search(r'src="/static/[^"]+"', attrs), (
                name,
                attrs,
            )
        assert "cdn" not in body.lower() and "https://" not in body, name
        assert "<nav" in body and 'href="/alerts' in body, name  # the navigation on every page
        assert 'class="api"' in body or name in ("docs", "sign-in"), name  # its API call


def test_api_responses_carry_the_headers_too(site: Seeded) -> None:
    r = site.api.client.get("/api/v1/health")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_user_supplied_markup_stays_text(site: Seeded) -> None:
    seen: dict[str, bool] = dict.fromkeys(EVIL_STRINGS, False)
    for name, path in page_urls(site).items():
        body = get(site, path).text
        for raw in RAW:
            assert raw not in body, (name, raw)
        text = unescape(body)
        for evil in EVIL_STRINGS:
            seen[evil] = seen[evil] or evil in text
        for spec in figures(body):
            dumped = json.dumps(spec)
            # Plotly reads tags in labels: user strings reach it HTML-escaped.
            assert "<script" not in dumped and "<img" not in dumped, name
    assert all(seen.values()), [k for k, v in seen.items() if not v]


def test_links_are_encoded_and_lead_somewhere(site: Seeded) -> None:
    body = get(site, "/").text
    hrefs = [unescape(h) for h in re.findall(r'href="([^"]+)"', body)]
    cluster = [h for h in hrefs if "hardware_class=" in h and "mac-studio" in h]
    assert cluster, "the overview links each hardware class's series"
    for href in cluster[:3]:
        assert "+%2B+" in href  # "x + y" with its plus sign encoded
        assert parse_qs(urlsplit(href).query)["hardware_class"] == [CLUSTER]
        assert get(site, href).status_code == 200
    evil = [h for h in hrefs if "evil" in h]
    assert evil and all("<" not in h and "'" not in h for h in evil)
    for href in evil:
        assert get(site, href).status_code == 200, href
    # The evil metric's series is reachable from the catalog by its encoded link.
    catalog = get(site, f"/catalog?project={PROJECT}").text
    assert f"metric={quote(EVIL_METRIC, safe='')}".replace("%20", "+") in unescape(catalog)


def test_unknown_things_are_404_pages(site: Seeded) -> None:
    bench = site.serving_bench_ids[16]
    missing = [
        f"/series?project={PROJECT}&benchmark_id={bench}&metric=output_throughput&hardware_class=h100-sxm",
        f"/series?project={PROJECT}&benchmark_id={bench}&metric=no_such_metric",
        f"/series?project={PROJECT}&benchmark_id=999999&metric=output_throughput",
        f"/series?project=nope&benchmark_id={bench}&metric=output_throughput",
        f"/commits/{'f' * 40}?project={PROJECT}",
        f"/commits/{sha(1)}?project=nope",
        "/?project=nope",
        f"/hardware?project={PROJECT}&benchmark_id={bench}&metric=nope",
        f"/serving?project={PROJECT}&benchmark=nope",
        f"/collectives?project={PROJECT}&collective=nope",
        f"/alerts?project={PROJECT}&hardware_class=nope",
        "/no/such/page",
    ]
    for path in missing:
        r = get(site, path)
        assert r.status_code == 404, (path, r.status_code)
        assert r.headers["content-type"].startswith("text/html") and "<nav" in r.text, path
    bad = get(site, "/series?project=exo&benchmark_id=abc&metric=m")
    assert bad.status_code == 422 and "benchmark_id" in bad.text and "<nav" in bad.text
    # The API keeps its JSON errors.
    api = site.api.client.get("/api/v1/no-such-thing", headers=HTML)
    assert api.status_code == 404 and api.json()["error"] == "not_found"
    view = site.api.client.get(
        "/api/v1/views/series", params={"project": PROJECT, "benchmark_id": bench, "metric": "x"}
    )
    assert view.status_code == 404


def test_the_overview_reads_each_hardware_class_at_a_glance(site: Seeded) -> None:
    data = site.api.client.get("/api/v1/views/overview", params={"project": PROJECT}).json()
    cards = {c["hardware_class"]: c for c in data["hardware"]}
    assert set(cards) == {"cpu-x86_64", "dgx-spark", CLUSTER, EVIL_HARDWARE}
    assert cards["dgx-spark"]["status"] == "failure"  # an open failure alert
    assert cards["dgx-spark"]["open_regressions"] == 1
    assert cards["cpu-x86_64"]["status"] == "healthy"
    assert cards[CLUSTER]["kind"] == "cluster"
    headline = {m["label"]: m for m in cards["cpu-x86_64"]["metrics"]}
    assert set(headline) == {
        "Output tokens/s", "TTFT p50", "TTFT p99", "TPOT p50", "Goodput", "All-reduce peak busbw",
    }  # fmt: skip
    assert headline["All-reduce peak busbw"]["peak_over"] == len(SIZES)
    assert len(headline["Output tokens/s"]["spark"]) == 12
    catalog = site.api.client.get(
        "/api/v1/series-catalog",
        params={
            "project": PROJECT,
            "metric": "output_throughput",
            "hardware_class": "cpu-x86_64",
            "limit": 100,
        },
    ).json()["items"]
    assert headline["Output tokens/s"]["value"] in {e["last_value"] for e in catalog}
    assert [g["sha"] for g in data["incidents"]] == [sha(FAILURE_AT), sha(REGRESSION_AT)]
    strip = {
        c["sha"]: {cell["hardware_class"]: cell["state"] for cell in c["cells"]} for c in data["commits"]
    }
    assert strip[sha(REGRESSION_AT)]["dgx-spark"] == "regression"
    assert strip[sha(FAILURE_AT)]["dgx-spark"] == "failure"
    assert strip[sha(11)][CLUSTER] == "failure"  # the engine did not start
    assert strip[sha(REGRESSION_AT)]["cpu-x86_64"] == "healthy"


def test_the_series_view_marks_alerts_failures_and_annotations(site: Seeded) -> None:
    bench = site.serving_bench_ids[16]
    data = site.api.client.get(
        "/api/v1/views/series",
        params={"project": PROJECT, "benchmark_id": bench, "metric": "output_throughput"},
    ).json()
    traces = {t["label"]: t for t in data["traces"]}
    assert set(traces) == {"cpu-x86_64", "dgx-spark", CLUSTER, EVIL_HARDWARE}
    assert len(traces["cpu-x86_64"]["value"]) == 12 and len(traces[CLUSTER]["value"]) == 11
    assert [(a["kind"], a["sha"]) for a in data["alerts"]] == [
        ("regression", sha(REGRESSION_AT)),
        ("starts_failing", sha(FAILURE_AT)),
    ]
    assert [(f["failure_class"], f["sha"], f["hardware_class"]) for f in data["failures"]] == [
        ("engine_start", sha(11), CLUSTER)
    ]
    assert [a["sha"] for a in data["annotations"]] == [sha(5)]
    [spec] = figures(get(site, page_urls(site)["series"]).text)
    names = [t["name"] for t in spec["data"]]
    # The commits first (one hover row for all traces), then a trace per hardware class.
    assert names[:5] == [
        "commit",
        CLUSTER,
        "cpu-x86_64",
        "dgx-spark",
        "evil&lt;script&gt;alert('hw')&lt;/script&gt;",
    ]
    assert "regressions (alerts)" in names and "failures" in names
    assert spec["layout"]["yaxis"]["title"]["text"] == "output_throughput [tok/s] (higher is better)"
    assert [b["label"] for b in spec["layout"]["updatemenus"][0]["buttons"]] == ["linear", "log"]
    assert spec["layout"]["xaxis"]["rangeslider"]["visible"] is True
    # Error bars where there are samples (TTFT carries them).
    ttft = site.api.client.get(
        "/api/v1/views/series",
        params={
            "project": PROJECT,
            "benchmark_id": bench,
            "metric": "median_ttft_ms",
            "hardware_class": "dgx-spark",
        },
    ).json()
    [t] = ttft["traces"]
    assert all(lo < v < hi for lo, v, hi in zip(t["lo"], t["value"], t["hi"], strict=True))
    vary = site.api.client.get(
        "/api/v1/views/series",
        params={
            "project": PROJECT,
            "benchmark_id": bench,
            "metric": "median_ttft_ms",
            "hardware_class": "dgx-spark",
            "vary": "concurrency",
        },
    ).json()
    assert [t["label"] for t in vary["traces"]] == ["concurrency=1", "concurrency=4", "concurrency=16"]


def test_the_commit_page_has_results_jobs_failures_and_alerts(site: Seeded) -> None:
    data = site.api.client.get(
        f"/api/v1/views/commits/{sha(REGRESSION_AT)}", params={"project": PROJECT}
    ).json()
    assert data["baseline"]["sha"] == sha(REGRESSION_AT - 1)
    groups = {(g["suite"], g["hardware_class"]): g["results"] for g in data["groups"]}
    dgx = {
        (r["params"]["concurrency"], r["metric"]): r
        for r in groups[("serving", "dgx-spark")]
        if "concurrency" in r["params"]
    }
    flagged = dgx[(16, "output_throughput")]
    assert flagged["alert_kind"] == "regression" and flagged["significance"] == 0.001
    assert flagged["change"] == pytest.approx(-0.2, abs=0.05) and flagged["improved"] is False
    assert [a["kind"] for a in data["alerts"]] == ["regression"]
    failed = site.api.client.get(
        f"/api/v1/views/commits/{sha(FAILURE_AT)}", params={"project": PROJECT}
    ).json()
    [failure] = failed["failures"]
    assert failure["failure_class"] == "oom" and "CUDA out of memory" in failure["log_excerpt"]
    jobs = site.api.client.get(f"/api/v1/views/commits/{sha(12)}", params={"project": PROJECT}).json()["jobs"]
    by_state = {j["state"]: j for j in jobs}
    assert set(by_state) == {"succeeded", "running", "queued"}
    assert by_state["succeeded"]["duration_s"] == pytest.approx(360, abs=2)
    tail = by_state["succeeded"]["log_tail"]
    assert tail.endswith(EVIL_LOG) and "step 0\n" not in tail and len(tail.split("\n")) == 40
    page = get(site, page_urls(site)["commit-jobs"]).text
    assert "&lt;script&gt;alert(&#39;log&#39;)&lt;/script&gt;" in page and "6 min 00 s" in page
    assert EVIL_RUNNER not in page and unescape(page).count(EVIL_RUNNER) >= 1


def test_hardware_comparison_normalises_where_configured(site: Seeded) -> None:
    bench = site.serving_bench_ids[16]
    data = site.api.client.get(
        "/api/v1/views/hardware",
        params={"project": PROJECT, "benchmark_id": bench, "metric": "output_throughput"},
    ).json()
    rows = {r["hardware_class"]: r for r in data["rows"]}
    spark = rows["dgx-spark"]
    assert spark["per_watt"] == pytest.approx(spark["value"] / 240.0)
    assert spark["per_dollar_hour"] == pytest.approx(spark["value"] / 3.0)
    assert spark["per_accelerator"] == pytest.approx(spark["value"])
    assert rows[CLUSTER]["per_accelerator"] == pytest.approx(rows[CLUSTER]["value"] / 3)
    assert rows["cpu-x86_64"]["per_accelerator"] is None and rows["cpu-x86_64"]["missing"] == [
        "accelerators", "power", "price",
    ]  # fmt: skip
    page = get(site, page_urls(site)["hardware"]).text
    assert '<span class="missing">accelerators, power, price</span>' in page and "not configured" in page
    # A latency is not divided by watts.
    ttft = site.api.client.get(
        "/api/v1/views/hardware",
        params={"project": PROJECT, "benchmark_id": bench, "metric": "median_ttft_ms"},
    ).json()
    assert all(r["per_watt"] is None for r in ttft["rows"]) and ttft["selected"]["normalisable"] is False
    at = site.api.client.get(
        "/api/v1/views/hardware",
        params={"project": PROJECT, "benchmark_id": bench, "metric": "output_throughput", "commit": sha(3)},
    ).json()
    assert {r["sha"] for r in at["rows"]} == {sha(3)}


def test_serving_curves_and_collectives(site: Seeded) -> None:
    data = site.api.client.get("/api/v1/views/serving", params={"project": PROJECT}).json()
    assert data["benchmark"] == "chat" and data["load"] == "concurrency"
    assert data["commit"]["sha"] == sha(12) and data["baseline"]["sha"] == sha(11)
    curves = {(c["hardware_class"], c["run"]): c for c in data["curves"]}
    spark = curves[("dgx-spark", "commit")]
    assert [p["load"] for p in spark["points"]] == [1, 4, 16]
    assert ("cpu-x86_64", "baseline") in curves and (CLUSTER, "baseline") not in curves  # it failed at 11
    for p in spark["points"]:
        assert set(p["ttft_ms"]) == {"p50", "p99"}
        assert p["interactivity"] > 0 and p["throughput_per_accelerator"] == p["output_throughput"]
    tput, ttft = figures(get(site, page_urls(site)["serving"]).text)
    assert {t["name"] for t in tput["data"]} >= {"dgx-spark · commit", "dgx-spark · baseline"}
    assert any("p99" in t["name"] for t in ttft["data"])

    coll = site.api.client.get("/api/v1/views/collectives", params={"project": PROJECT}).json()
    assert coll["selected"] == {"collective": "all_reduce", "nranks": 2, "backend": "gloo"}
    sweeps = {(s["hardware_class"], s["run"]): s for s in coll["sweeps"]}
    assert sweeps[("dgx-spark", "commit")]["sizes"] == list(SIZES)
    assert {t["label"] for t in coll["avg_busbw"]} == {"cpu-x86_64", "dgx-spark", CLUSTER, EVIL_HARDWARE}
    busbw, algbw, avg = figures(get(site, page_urls(site)["collectives"]).text)
    assert busbw["layout"]["xaxis"]["type"] == "log" and algbw["layout"]["xaxis"]["type"] == "log"
    assert [t["name"] for t in avg["data"]][0] == "commit" and len(avg["data"]) == 1 + 4


def test_embedded_json_cannot_leave_its_script_element(site: Seeded) -> None:
    body = get(site, page_urls(site)["commit-evil"]).text + get(site, page_urls(site)["series"]).text
    for block in re.findall(r'class="plotly-figure"[^>]*>(.*?)</script>', body, re.S):
        assert "<" not in block and ">" not in block and "&" not in block.replace("\\u0026", "")


def test_pages_say_what_is_missing_on_an_empty_site(api: Api) -> None:
    expected = {
        "/": "No results yet for this project",
        "/catalog": "No series match",
        "/hardware": "No results yet: nothing to compare",
        "/serving": "No serving sweeps yet",
        "/collectives": "No collectives results yet",
        "/alerts": "No alerts match",
        "/runners": "No runners registered yet",
    }
    for path, text in expected.items():
        r = api.client.get(path, headers=HTML)
        assert r.status_code == 200 and text in r.text, path
    # A commit with failures and no results says so instead of an empty table.
    body = batch("f", "b" * 40, results=[])
    body["failures"] = [{"suite": "serving", "failure_class": "setup", "message": "no model"}]
    assert api.ingest(body).status_code == 201
    page = api.client.get(f"/commits/{'b' * 40}", params={"project": "exo"}, headers=HTML).text
    assert "every benchmark of this commit failed" in page and "No jobs for this commit" in page


def test_docs_are_served_without_a_cdn(site: Seeded) -> None:
    page = get(site, "/docs").text
    assert re.findall(r'<script src="([^"]+)"', page) == [
        "/static/swagger/swagger-ui-bundle.js",
        "/static/docs.js",
    ]
    for asset, kind in (("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "css")):
        r = site.api.client.get(f"/static/swagger/{asset}")
        assert r.status_code == 200 and kind in r.headers["content-type"] and len(r.content) > 10_000
    assert site.api.client.get("/static/swagger/../../secrets").status_code == 404
    assert site.api.client.get("/redoc").status_code == 404  # ReDoc would load from a CDN


def sign_in(api: Api, token_headers: dict[str, str]) -> Any:
    token = token_headers["Authorization"].split(" ", 1)[1]
    return api.client.post("/admin/sign-in", data={"token": token, "next": "/alerts"}, follow_redirects=False)


def test_triage_needs_a_signed_in_admin_and_the_csrf_token(api: Api) -> None:
    seeded = seed(api)
    alert = seeded.regression_alert_id
    assert 'name="csrf"' not in api.client.get("/alerts", headers=HTML).text  # no forms without sign-in
    refused = sign_in(api, api.runner)
    assert refused.status_code == 401 and "not a live token with the admin scope" in refused.text
    assert "set-cookie" not in refused.headers

    api.client.cookies.clear()
    r = api.client.post(f"/alerts/{alert}/triage", data={"state": "acknowledged"})
    assert r.status_code == 401
    ok = sign_in(api, api.admin)
    assert ok.status_code == 303 and ok.headers["location"] == "/alerts"
    cookie = ok.headers["set-cookie"]
    assert (
        "HttpOnly" in cookie
        and "SameSite=strict" in cookie.replace("Strict", "strict")
        and "Path=/" in cookie
    )
    page = api.client.get("/alerts", headers=HTML).text
    [csrf] = set(re.findall(r'name="csrf" value="([0-9a-f]{64})"', page))
    assert f'action="/alerts/{alert}/triage"' in page

    r = api.client.post(f"/alerts/{alert}/triage", data={"state": "acknowledged"}, follow_redirects=False)
    assert r.status_code == 403  # no CSRF token
    r = api.client.post(
        f"/alerts/{alert}/triage", data={"state": "acknowledged", "csrf": "0" * 64}, follow_redirects=False
    )
    assert r.status_code == 403
    r = api.client.post(
        f"/alerts/{alert}/triage",
        data={"state": "bogus", "csrf": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 422
    r = api.client.post(
        f"/alerts/{alert}/triage",
        data={
            "state": "acknowledged",
            "notes": "looking <b>now</b>",
            "csrf": csrf,
            "back": "https://evil.example/",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/alerts"  # never off-site
    groups = api.client.get(
        "/api/v1/views/alerts", params={"project": PROJECT, "state": "acknowledged"}
    ).json()["groups"]
    [triaged] = [a for g in groups for a in g["alerts"]]
    assert (triaged["id"], triaged["state"]) == (alert, "acknowledged")
    # The note is in the alert's triage history, as the API's own state change records it.
    history = api.client.get(f"/api/v1/alerts/{alert}").json()["history"]
    assert any(e.get("note") == "looking <b>now</b>" for e in history), history
    # A revoked admin token signs nobody in any more, cookie or not.
    out = api.client.post("/admin/sign-out", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303 and 'bench_admin=""' in out.headers["set-cookie"]
    api.client.cookies.clear()
    assert (
        api.client.post(f"/alerts/{alert}/triage", data={"state": "fixed", "csrf": csrf}).status_code == 401
    )
    assert EVIL_MESSAGE and EVIL_BENCHMARK  # the seed's markup is used by the other tests
