"""The analysis as users see it: results posted through the API become alerts and incidents with
no further action (the embedded worker runs `analysis.update` after each ingest commits), on
PostgreSQL and SQLite."""

from __future__ import annotations

from typing import Any

import pytest

from bench_server.analysis.detector import DetectorSettings
from bench_server.auth.service import create_token
from bench_server.tasks import TASKS, TaskSpec
from tests.bench_server.analysis.helpers import (
    drain,
    failure,
    items,
    noisy,
    post_commit,
    post_series,
    sha,
)
from tests.bench_server.conftest import Api


def test_an_ingested_regression_is_an_incident_on_its_commit(api: Api) -> None:
    post_series(api, [*noisy(30, 100.0), 88.0])

    (alert,) = items(api, "alerts")
    assert (alert["kind"], alert["state"], alert["commit"], alert["previous_commit"]) == (
        "regression",
        "new",
        sha(30),
        sha(29),
    )
    assert alert["detector"] == "check"  # the newest commit: too recent for a change point
    assert alert["relative_change"] == pytest.approx(-0.12, abs=0.02)
    assert alert["ci_low"] < alert["relative_change"] < alert["ci_high"]
    assert (alert["metric"], alert["hardware_class"], alert["suite"]) == (
        "output_throughput",
        "cpu-x86_64",
        "serving",
    )

    (incident,) = items(api, "incidents")
    assert (incident["commit"], incident["state"], incident["alerts"]) == (sha(30), "new", 1)
    assert alert["incident_id"] == incident["id"]
    detail = api.client.get(f"/api/v1/incidents/{incident['id']}").json()
    assert [a["id"] for a in detail["alerts"]] == [alert["id"]]
    assert [c["sha"] for c in detail["suspect_commits"]] == [sha(30)]

    commit = api.client.get(f"/api/v1/commits/{sha(30)}", params={"project": "exo"}).json()
    assert [(a["id"], a["kind"], a["incident_id"]) for a in commit["alerts"]] == [
        (alert["id"], "regression", incident["id"])
    ]
    assert api.client.get(f"/api/v1/commits/{sha(29)}", params={"project": "exo"}).json()["alerts"] == []


def test_a_clean_10_percent_step_is_found_at_its_commit(api: Api) -> None:
    post_series(api, [*noisy(30, 100.0), *noisy(30, 90.0)])

    (alert,) = items(api, "alerts")
    assert (alert["kind"], alert["detector"], alert["commit"]) == ("regression", "change_point", sha(30))
    assert alert["ci_low"] < -0.10 < alert["ci_high"]
    assert alert["p_value"] < DetectorSettings().significance
    assert alert["before_value"] == pytest.approx(100.0, rel=0.01)
    assert alert["after_value"] == pytest.approx(90.0, rel=0.01)
    (incident,) = items(api, "incidents")
    assert incident["commit"] == sha(30) and incident["previous_commit"] == sha(29)


def test_the_direction_of_a_metric_decides_regression_or_improvement(api: Api) -> None:
    post_series(api, [*noisy(30, 40.0), *noisy(10, 46.0)], metric="ttft_ms", unit="ms", direction="lower")
    post_series(api, [*noisy(30, 100.0), *noisy(10, 115.0)])
    kinds = {a["metric"]: (a["kind"], a["commit"], a["relative_change"] > 0) for a in items(api, "alerts")}
    assert kinds == {
        "ttft_ms": ("regression", sha(30), True),  # slower to the first token
        "output_throughput": ("improvement", sha(30), True),
    }


def test_noise_alone_raises_nothing(api: Api) -> None:
    post_series(api, noisy(80, 100.0, cv=0.02, seed=7))
    assert items(api, "alerts") == []
    assert items(api, "incidents") == []


def test_a_step_then_a_recovery_is_an_alert_that_closes_as_fixed(api: Api) -> None:
    post_series(api, [*noisy(30, 100.0), *noisy(30, 90.0), *noisy(30, 100.0)])

    (alert,) = items(api, "alerts")  # the recovery is the fix, not an improvement of its own
    assert (alert["kind"], alert["commit"], alert["state"], alert["fixed_by"]) == (
        "regression",
        sha(30),
        "fixed",
        sha(60),
    )
    incidents = items(api, "incidents")
    assert len(incidents) == 1, incidents
    (incident,) = incidents
    assert incident["state"] == "fixed"
    history = api.client.get(f"/api/v1/incidents/{incident['id']}").json()["history"]
    assert [(e["actor"], e["from_state"], e["to_state"]) for e in history] == [
        ("analysis", "new", "fixed"),  # the alert
        ("analysis", "new", "fixed"),  # the incident
    ]


def test_a_single_outlier_is_withdrawn_once_later_commits_show_it(api: Api) -> None:
    post_series(api, [*noisy(30, 100.0), 80.0])
    (flagged,) = items(api, "alerts")
    assert (flagged["commit"], flagged["detector"]) == (sha(30), "check")
    post_series(api, noisy(10, 100.0, seed=3), first=31)
    assert items(api, "alerts") == [] and items(api, "incidents") == []


def test_a_fingerprint_change_is_an_annotation_not_a_regression(api: Api) -> None:
    old = {"cpu": "EPYC", "cores": 2, "driver": "535.104"}
    new = {"cpu": "EPYC", "cores": 2, "driver": "550.54"}
    post_series(api, noisy(30, 100.0), fingerprint=old)
    post_series(api, noisy(30, 90.0), first=30, fingerprint=new)

    assert items(api, "alerts") == []
    (note,) = items(api, "annotations")
    assert (note["kind"], note["commit"], note["hardware_class"]) == (
        "environment_change",
        sha(30),
        "cpu-x86_64",
    )
    assert "driver: 535.104 -> 550.54" in note["text"]
    assert note["details"]["changes"] == {"driver": ["535.104", "550.54"]}


def test_one_incident_groups_every_series_that_moved_at_a_commit(api: Api) -> None:
    for hw in ("cpu-x86_64", "cpu-aarch64"):
        for bench in ("gemma-270m-128x64", "gemma-270m-1024x128"):
            post_series(api, [*noisy(30, 100.0), *noisy(20, 85.0)], hardware_class=hw, benchmark=bench)

    alerts = items(api, "alerts")
    assert len(alerts) == 4 and {a["commit"] for a in alerts} == {sha(30)}
    (incident,) = items(api, "incidents")
    assert incident["alerts"] == 4 and {a["incident_id"] for a in alerts} == {incident["id"]}
    assert incident["summary"]["hardware_classes"] == ["cpu-aarch64", "cpu-x86_64"]
    assert incident["summary"]["kinds"] == {"regression": 4}
    assert incident["title"].startswith(f"4 regressions at {sha(30)[:10]}")
    assert [a["hardware_class"] for a in items(api, "alerts", hardware_class="cpu-aarch64")] == [
        "cpu-aarch64"
    ] * 2
    assert len(items(api, "incidents", hardware_class="cpu-aarch64", kind="regression")) == 1
    assert items(api, "incidents", kind="failure") == []


def test_a_benchmark_that_starts_failing_then_recovers(api: Api) -> None:
    for i in range(10):
        post_commit(api, i, [100.0])
    for i in range(10, 13):
        post_commit(api, i, failures=[failure()])
    drain()
    (alert,) = items(api, "alerts", kind="failure")
    assert (alert["kind"], alert["commit"], alert["previous_commit"], alert["state"]) == (
        "starts_failing",
        sha(10),
        sha(9),
        "new",
    )
    assert alert["metric"] is None and alert["benchmark"] == "gemma-270m-128x64"

    post_commit(api, 13, [100.0])
    drain()
    by_kind = {a["kind"]: a for a in items(api, "alerts", kind="failure")}
    assert set(by_kind) == {"starts_failing", "recovered"}
    assert (by_kind["starts_failing"]["state"], by_kind["starts_failing"]["fixed_by"]) == ("fixed", sha(13))
    assert by_kind["recovered"]["commit"] == sha(13)
    incidents = {i["commit"]: i for i in items(api, "incidents")}
    assert incidents[sha(10)]["state"] == "fixed"


def test_a_benchmark_that_fails_now_and_then_is_flaky(api: Api) -> None:
    for i in range(14):
        if i in (5, 9):
            post_commit(api, i, failures=[failure()])
        else:
            post_commit(api, i, [100.0])
    drain()
    (alert,) = items(api, "alerts", kind="flaky")
    assert (alert["commit"], alert["state"]) == (sha(5), "new")
    assert (alert["failure_rate"], alert["failure_window"]) == (pytest.approx(2 / 14), 14)


def test_a_pull_request_commit_is_judged_against_its_merge_base(api: Api) -> None:
    # main regressed at commit 20; the pull requests branched off at commit 15
    post_series(api, [*noisy(20, 100.0), *noisy(20, 80.0)])
    main_alerts = items(api, "alerts")
    pr = {"branch": "feature"}
    same = {"sha": sha(1, "pr"), "parents": [sha(15)], **pr}
    slower = {"sha": sha(2, "pr"), "parents": [sha(15)], **pr}
    # a third names its merge-base in the batch context; its parent is unknown to the server
    named = {"sha": sha(3, "pr"), "parents": [sha(0, "unknown")], **pr}
    post_commit(api, 0, [100.5], commit=same)
    post_commit(api, 0, [84.0], commit=slower)
    post_commit(api, 0, [84.0], commit=named, context={"merge_base": sha(10)})
    drain()

    # against main's tip (80) the first would be a 25% improvement; against its merge-base, nothing
    pr_alerts = items(api, "alerts", branch="feature")
    assert [(a["kind"], a["commit"], a["previous_commit"]) for a in pr_alerts] == [
        ("regression", sha(3, "pr"), sha(10)),
        ("regression", sha(2, "pr"), sha(15)),
    ]
    assert all(a["detector"] == "check" for a in pr_alerts)
    assert items(api, "alerts", branch="main") == main_alerts
    incident = items(api, "incidents", commit=sha(2, "pr"))[0]
    detail = api.client.get(f"/api/v1/incidents/{incident['id']}").json()
    assert [c["sha"] for c in detail["suspect_commits"]] == [sha(2, "pr")]


def _token(api: Api, scope: str) -> dict[str, str]:
    with api.db.transaction() as session:
        return {"Authorization": f"Bearer {create_token(session, f'test-{scope}', [scope]).token}"}


def test_triage_scope_changes_states_and_runner_scope_cannot(api: Api) -> None:
    post_series(api, [*noisy(30, 100.0), *noisy(20, 85.0)], hardware_class="cpu-x86_64")
    post_series(api, [*noisy(30, 100.0), *noisy(20, 85.0)], hardware_class="cpu-aarch64")
    (incident,) = items(api, "incidents")
    url = f"/api/v1/incidents/{incident['id']}/state"
    body = {"state": "acknowledged", "note": "bisecting"}
    assert api.client.post(url, json=body).status_code == 401
    assert api.client.post(url, json=body, headers=api.runner).status_code == 403
    assert api.client.post(url, json={"state": "gone"}, headers=api.admin).status_code == 422

    triage = _token(api, "triage")
    r = api.client.post(url, json=body, headers=triage)
    assert r.status_code == 200, r.text
    assert r.json()["incident"]["state"] == "acknowledged"
    assert {a["state"] for a in r.json()["alerts"]} == {"acknowledged"}
    assert [(e["actor"], e["from_state"], e["to_state"], e["note"]) for e in r.json()["history"]] == [
        ("test-triage", "new", "acknowledged", "bisecting")
    ] * 3
    acknowledged = items(api, "alerts", state="acknowledged")
    assert sorted(a["id"] for a in acknowledged) == [a["id"] for a in r.json()["alerts"]]
    assert items(api, "alerts", state="new") == []

    # fixing both alerts one by one fixes the incident
    first, second = r.json()["alerts"]
    fix = {"state": "fixed", "note": "reverted in #12"}
    assert (
        api.client.post(f"/api/v1/alerts/{first['id']}/state", json=fix, headers=api.runner).status_code
        == 403
    )
    assert api.client.post(f"/api/v1/alerts/{first['id']}/state", json=fix, headers=triage).status_code == 200
    assert items(api, "incidents")[0]["state"] == "acknowledged"
    done = api.client.post(f"/api/v1/alerts/{second['id']}/state", json=fix, headers=api.admin).json()
    assert done["alert"]["state"] == "fixed" and done["history"][-1]["note"] == "reverted in #12"
    assert items(api, "incidents")[0]["state"] == "fixed"
    assert api.client.post("/api/v1/incidents/999999/state", json=body, headers=triage).status_code == 404


def test_analysis_settings_are_per_project_and_admin_only(api: Api) -> None:
    view = api.client.get("/api/v1/projects/exo/analysis-settings").json()
    assert view["built_in"]["min_relative_change"] == DetectorSettings().min_relative_change
    assert view["effective"]["*"]["significance"] == DetectorSettings().significance
    post_series(api, [*noisy(30, 100.0), *noisy(30, 90.0)])
    assert len(items(api, "alerts")) == 1

    body: dict[str, Any] = {
        "defaults": {"failure_streak": 3},
        "metrics": {"output_throughput": {"min_relative_change": 0.2}},
    }
    url = "/api/v1/projects/exo/analysis-settings"
    assert api.client.put(url, json=body, headers=api.runner).status_code == 403
    bad = {"metrics": {"output_throughput": {"min_points": 60}}}  # window 100 < 2 x 60
    assert api.client.put(url, json=bad, headers=api.admin).status_code == 422
    r = api.client.put(url, json=body, headers=api.admin)
    assert r.status_code == 200, r.text
    assert r.json()["effective"]["output_throughput"]["min_relative_change"] == 0.2
    assert r.json()["effective"]["*"]["failure_streak"] == 3
    drain()  # the project is analysed again: a 10% step is below the new 20% threshold
    assert items(api, "alerts") == [] and items(api, "incidents") == []
    assert api.client.get(url).json()["metrics"] == body["metrics"]


recorded: list[int] = []


def record_incident(ctx: Any, incident_id: int) -> None:
    recorded.append(incident_id)


def test_an_incident_hook_runs_once_its_task_is_declared(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    post_series(api, [*noisy(30, 100.0), 88.0])
    assert recorded == []  # no reports task declared: nothing sent
    monkeypatch.setitem(
        TASKS, "reports.incident_changed", TaskSpec("analysis", f"{__name__}:record_incident")
    )
    post_series(api, noisy(8, 100.0), hardware_class="cpu-aarch64")
    post_commit(api, 8, [80.0], hardware_class="cpu-aarch64")
    drain()
    incidents = {i["commit"]: i["id"] for i in items(api, "incidents")}
    assert recorded == [incidents[sha(8)]]
    triage = _token(api, "triage")
    url = f"/api/v1/incidents/{incidents[sha(30)]}/state"
    assert api.client.post(url, json={"state": "ignored"}, headers=triage).status_code == 200
    drain()
    assert recorded == [incidents[sha(8)], incidents[sha(30)]]
    recorded.clear()


def test_listings_filter_and_export(api: Api) -> None:
    post_series(api, [*noisy(30, 100.0), *noisy(20, 85.0)])
    for i in range(50, 53):
        post_commit(api, i, failures=[failure()])
    drain()
    assert {a["kind"] for a in items(api, "alerts")} == {"regression", "starts_failing"}
    assert [a["kind"] for a in items(api, "alerts", kind="failure")] == ["starts_failing"]
    assert [a["kind"] for a in items(api, "alerts", commit=sha(30)[:8])] == ["regression"]
    assert items(api, "alerts", suite="other") == []
    assert items(api, "alerts", project="nope") == []
    assert api.client.get("/api/v1/alerts", params={"state": "open"}).status_code == 422
    page = api.client.get("/api/v1/alerts", params={"limit": 1}).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    rest = api.client.get("/api/v1/alerts", params={"limit": 1, "cursor": page["next_cursor"]}).json()
    assert len(rest["items"]) == 1 and rest["items"][0]["id"] < page["items"][0]["id"]
    csv = api.client.get("/api/v1/alerts", params={"format": "csv"})
    assert csv.status_code == 200 and csv.text.splitlines()[0].startswith("id,project,incident_id,kind")
    assert len(csv.text.strip().splitlines()) == 3
    incidents = api.client.get("/api/v1/incidents", params={"format": "json"}).json()
    assert sorted(i["commit"] for i in incidents) == sorted([sha(30), sha(50)])
