"""The job lifecycle over the API, on PostgreSQL and SQLite."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from bench_server.cli import main as cli_main
from bench_server.jobs import service
from bench_server.jobs.tasks import reap_expired
from bench_server.kit.outbox import AppContext
from bench_server.models import Failure, Job, Run, Runner
from bench_server.models.base import utcnow
from bench_server.runners.tasks import mark_offline
from bench_server.runs.tasks import fan_out
from tests.bench_server.conftest import Api, make_api
from tests.bench_server.jobs.helpers import register_runner, trigger

SHA = "1" * 40
SHA2 = "2" * 40


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    api = make_api(
        database_url, lease_seconds=30, job_log_max_bytes=200, max_attempts=2, claim_poll_interval_s=0.05
    )
    with api.client:
        yield api
    api.db.engine.dispose()


def ctx_of(api: Api) -> AppContext:
    return AppContext(api.db, api.client.app.state.settings)  # type: ignore[attr-defined]


def claim(api: Api, runner: dict[str, Any], wait: float = 0) -> Any:
    return api.client.post(f"/api/v1/jobs/claim?wait={wait}", headers=runner["headers"])


def jobs(api: Api) -> list[Job]:
    with api.db.read_only() as session:
        return list(session.scalars(select(Job).order_by(Job.id)))


def test_register_heartbeat_and_list(api: Api) -> None:
    r = register_runner(api.client, api.db, "cpu-1")
    assert r["token"].startswith("bch_") and isinstance(r["runner_id"], int)
    assert api.client.post("/api/v1/runners/heartbeat", json={}, headers=r["headers"]).json() == {
        "status": "online"
    }
    listed = api.client.get("/api/v1/runners").json()["items"]
    assert [(x["name"], x["hardware_class"], x["status"]) for x in listed] == [
        ("cpu-1", "cpu-x86_64", "online")
    ]

    # a ci token cannot register; an unknown class is refused with the usual error shape
    refused = api.client.post(
        "/api/v1/runners/register", json={"name": "x", "hardware_class": "cpu-x86_64"}, headers=api.ci
    )
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    bad = api.client.post(
        "/api/v1/runners/register", json={"name": "y", "hardware_class": "nope"}, headers=api.admin
    )
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "hardware_class"

    # re-registering a name revokes the old token
    again = register_runner(api.client, api.db, "cpu-1")
    assert again["runner_id"] == r["runner_id"]
    assert api.client.post("/api/v1/runners/heartbeat", json={}, headers=r["headers"]).status_code == 401
    assert api.client.post("/api/v1/runners/heartbeat", json={}, headers=again["headers"]).status_code == 200
    # a token without a runner cannot claim
    assert api.client.post("/api/v1/jobs/claim?wait=0", headers=api.admin).status_code == 403


def test_fan_out_one_job_per_suite_and_class_with_runners(api: Api) -> None:
    register_runner(api.client, api.db, "cpu-1")
    register_runner(api.client, api.db, "cpu-2")
    register_runner(api.client, api.db, "h100-1", "h100-sxm")
    resp = api.client.put(
        "/api/v1/projects/exo/suites", json={"suites": ["serving", "collectives"]}, headers=api.admin
    )
    assert resp.json()["suites"] == ["collectives", "serving"]
    run = trigger(api.client, api.ci, SHA)
    status = api.client.get(f"/api/v1/runs/{run['run_id']}").json()
    pairs = sorted((j["suite"], j["hardware_class"]) for j in status["jobs"])
    assert pairs == [
        ("collectives", "cpu-x86_64"),
        ("collectives", "h100-sxm"),
        ("serving", "cpu-x86_64"),
        ("serving", "h100-sxm"),
    ]
    assert status["counts"] == {"queued": 4} and status["done"] is False
    assert {j["priority"] for j in status["jobs"]} == {10}  # default branch
    # the trigger names suites and classes: only those
    run2 = trigger(api.client, api.ci, SHA2, suites=["serving"], hardware_classes=["cpu-x86_64"])
    assert [
        (j["suite"], j["hardware_class"])
        for j in api.client.get(f"/api/v1/runs/{run2['run_id']}").json()["jobs"]
    ] == [("serving", "cpu-x86_64")]
    # running the fan-out again (a redelivered task) creates nothing
    assert fan_out(ctx_of(api), run["run_id"]) == []
    assert len(jobs(api)) == 5


def test_no_duplicate_job_unless_forced(api: Api) -> None:
    register_runner(api.client, api.db, "cpu-1")
    trigger(api.client, api.ci, SHA)
    trigger(api.client, api.ci, SHA)
    assert [(j.suite, j.state, j.forced) for j in jobs(api)] == [("default", "queued", False)]
    trigger(api.client, api.ci, SHA, force=True)
    assert [(j.state, j.forced) for j in jobs(api)] == [("queued", False), ("queued", True)]

    # the database guard: a second active unforced job for the same identity is refused
    first = jobs(api)[0]
    with pytest.raises(IntegrityError), api.db.transaction() as session:
        session.add(
            Job(
                project_id=first.project_id,
                commit_id=first.commit_id,
                suite=first.suite,
                hardware_class_id=first.hardware_class_id,
                state="queued",
            )
        )
    # ... but once those jobs failed, a new trigger queues it again
    with api.db.transaction() as session:
        session.execute(update(Job).values(state="failed"))
    trigger(api.client, api.ci, SHA)
    assert [j.state for j in jobs(api)] == ["failed", "failed", "queued"]


def test_claim_lease_start_log_finish(api: Api) -> None:
    r = register_runner(api.client, api.db, "cpu-1")
    other = register_runner(api.client, api.db, "cpu-2")
    trigger(api.client, api.ci, SHA)
    resp = claim(api, r)
    assert resp.status_code == 200, resp.text
    job = resp.json()
    assert set(job) == {
        "id",
        "project",
        "commit",
        "suite",
        "hardware_class",
        "attempt",
        "lease_expires_at",
        "lease_seconds",
    }
    assert job["project"] == {"slug": "exo", "clone_url": None, "default_branch": "main"}
    assert job["commit"] == {"sha": SHA, "branch": "main"}
    assert (job["suite"], job["hardware_class"], job["attempt"], job["lease_seconds"]) == (
        "default",
        "cpu-x86_64",
        1,
        30,
    )
    assert claim(api, other).status_code == 204  # nothing else queued

    jid = job["id"]
    assert api.client.post(f"/api/v1/jobs/{jid}/lease", headers=r["headers"]).status_code == 200
    assert (
        api.client.post(f"/api/v1/jobs/{jid}/lease", headers=other["headers"]).json()["error"] == "lease_lost"
    )
    assert api.client.post(f"/api/v1/jobs/{jid}/start", headers=r["headers"]).json()["state"] == "running"
    log = "".join(f"line {i}\n" for i in range(100))
    put = api.client.put(f"/api/v1/jobs/{jid}/log", content=log.encode(), headers=r["headers"])
    assert put.status_code == 200 and put.json()["stored_bytes"] <= 200
    bad = api.client.post(
        f"/api/v1/jobs/{jid}/finish", json={"state": "failed", "failure_class": "nope"}, headers=r["headers"]
    )
    assert bad.status_code == 422
    done = api.client.post(f"/api/v1/jobs/{jid}/finish", json={"state": "succeeded"}, headers=r["headers"])
    assert done.status_code == 200 and done.json()["state"] == "succeeded"
    # a retried finish is fine; renewing a finished job is not
    assert (
        api.client.post(
            f"/api/v1/jobs/{jid}/finish", json={"state": "succeeded"}, headers=r["headers"]
        ).status_code
        == 200
    )
    assert api.client.post(f"/api/v1/jobs/{jid}/lease", headers=r["headers"]).status_code == 409

    detail = api.client.get(f"/api/v1/jobs/{jid}").json()
    assert detail["state"] == "succeeded" and detail["runner"] == "cpu-1"
    assert (
        detail["log"].endswith("line 99\n")
        and "truncated" in detail["log"]
        and len(detail["log"].encode()) <= 200
    )
    run = api.client.get(f"/api/v1/runs/{detail['run_id']}").json()
    assert run["done"] is True and run["succeeded"] is True


def test_priority_default_branch_before_pull_requests(api: Api) -> None:
    r = register_runner(api.client, api.db, "cpu-1")
    trigger(api.client, api.ci, "a" * 40, ref="refs/pull/7/head", branch="feature", pull_request=7)
    trigger(api.client, api.ci, "b" * 40, ref="refs/heads/feature")
    trigger(api.client, api.ci, "c" * 40, ref="refs/heads/main")
    order = []
    for _ in range(3):
        job = claim(api, r).json()
        order.append(job["commit"]["sha"][0])
        api.client.post(f"/api/v1/jobs/{job['id']}/finish", json={"state": "succeeded"}, headers=r["headers"])
    assert order == ["c", "b", "a"]


def test_long_poll_waits_then_answers_204_or_a_new_job(api: Api) -> None:
    r = register_runner(api.client, api.db, "cpu-1")
    started = time.monotonic()
    assert claim(api, r, wait=0.6).status_code == 204
    assert time.monotonic() - started >= 0.55

    answer: dict[str, Any] = {}

    def poll() -> None:
        t0 = time.monotonic()
        resp = claim(api, r, wait=10)
        answer.update(status=resp.status_code, elapsed=time.monotonic() - t0)

    waiter = threading.Thread(target=poll)
    waiter.start()
    time.sleep(0.5)
    trigger(api.client, api.ci, SHA)
    waiter.join(15)
    assert answer["status"] == 200
    assert 0.4 < answer["elapsed"] < 3.0


def test_release_and_cancel(api: Api) -> None:
    a = register_runner(api.client, api.db, "cpu-1")
    b = register_runner(api.client, api.db, "cpu-2")
    trigger(api.client, api.ci, SHA)
    job = claim(api, a).json()
    assert (
        api.client.post(f"/api/v1/jobs/{job['id']}/release", headers=a["headers"]).json()["state"] == "queued"
    )
    again = claim(api, b).json()
    assert (again["id"], again["attempt"]) == (job["id"], 2)
    api.client.post(f"/api/v1/jobs/{job['id']}/start", headers=b["headers"])

    assert api.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=b["headers"]).status_code == 403
    cancelled = api.client.post(
        f"/api/v1/jobs/{job['id']}/cancel", json={"reason": "superseded"}, headers=api.ci
    )
    assert cancelled.json()["state"] == "cancelled"
    renew = api.client.post(f"/api/v1/jobs/{job['id']}/lease", headers=b["headers"])
    assert renew.status_code == 409 and renew.json()["error"] == "job_cancelled"
    fin = api.client.post(
        f"/api/v1/jobs/{job['id']}/finish", json={"state": "succeeded"}, headers=b["headers"]
    )
    assert fin.status_code == 409
    assert api.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=api.admin).status_code == 200
    # a finished job cannot be cancelled
    trigger(api.client, api.ci, SHA2)
    j2 = claim(api, a).json()
    api.client.post(
        f"/api/v1/jobs/{j2['id']}/finish",
        json={"state": "failed", "failure_class": "crash"},
        headers=a["headers"],
    )
    assert (
        api.client.post(f"/api/v1/jobs/{j2['id']}/cancel", headers=api.ci).json()["error"] == "job_finished"
    )


def test_reaper_requeues_expired_leases_then_gives_up(api: Api) -> None:
    a = register_runner(api.client, api.db, "cpu-1")
    b = register_runner(api.client, api.db, "cpu-2")
    trigger(api.client, api.ci, SHA)
    first = claim(api, a).json()
    ctx = ctx_of(api)
    later = utcnow() + timedelta(seconds=31)
    with api.db.transaction() as session:
        assert service.reap(session, ctx, now=utcnow()).requeued == []  # the lease is still valid
    with api.db.transaction() as session:
        report = service.reap(session, ctx, now=later)
    assert report.requeued == [first["id"]] and report.failed == []
    assert (
        api.client.post(f"/api/v1/jobs/{first['id']}/lease", headers=a["headers"]).json()["error"]
        == "lease_lost"
    )

    second = claim(api, b).json()
    assert (second["id"], second["attempt"]) == (first["id"], 2)
    with api.db.transaction() as session:
        report = service.reap(session, ctx, now=utcnow() + timedelta(seconds=31))
    assert report.failed == [first["id"]]  # max_attempts=2
    detail = api.client.get(f"/api/v1/jobs/{first['id']}").json()
    assert (detail["state"], detail["failure_class"]) == ("failed", "runner_lost")
    with api.db.read_only() as session:
        failures = session.scalars(select(Failure).where(Failure.job_id == first["id"])).all()
        assert [f.failure_class for f in failures] == ["runner_lost"]
    # the task body runs the same code and is a no-op when there is nothing to do
    assert reap_expired(ctx)["requeued"] == []


def test_reaper_closes_a_job_whose_results_arrived_but_finish_was_lost(api: Api) -> None:
    a = register_runner(api.client, api.db, "cpu-1")
    trigger(api.client, api.ci, SHA)
    job = claim(api, a).json()
    body = {
        "idempotency_key": f"runner-x/job-{job['id']}/attempt-1",
        "project": "exo",
        "commit": {"sha": SHA, "branch": "main"},
        "job_id": job["id"],
        "machine": {"hardware_class": "cpu-x86_64", "fingerprint": {"cpu": "x"}},
        "results": [
            {
                "suite": "default",
                "benchmark": "b",
                "params": {},
                "metric": "tok_s",
                "unit": "tok/s",
                "direction": "higher",
                "value": 1.0,
            }
        ],
    }
    assert api.client.post("/api/v1/results", json=body, headers=a["headers"]).status_code == 201
    with api.db.transaction() as session:
        report = service.reap(session, ctx_of(api), now=utcnow() + timedelta(seconds=31))
    assert report.requeued == [] and report.finished == [job["id"]]
    assert api.client.get(f"/api/v1/jobs/{job['id']}").json()["state"] == "succeeded"


def test_runners_go_offline_after_silence(api: Api) -> None:
    r = register_runner(api.client, api.db, "cpu-1")
    ctx = ctx_of(api)
    assert mark_offline(ctx) == []
    with api.db.transaction() as session:
        session.execute(
            update(Runner).values(
                last_heartbeat_at=utcnow() - timedelta(hours=1), created_at=utcnow() - timedelta(hours=2)
            )
        )
    assert (
        api.client.get("/api/v1/runners").json()["items"][0]["status"] == "offline"
    )  # even before the sweep
    assert mark_offline(ctx) == [r["runner_id"]]
    assert api.client.get("/api/v1/runners?status=offline").json()["items"][0]["name"] == "cpu-1"
    api.client.post("/api/v1/runners/heartbeat", json={}, headers=r["headers"])
    assert api.client.get("/api/v1/runners").json()["items"][0]["status"] == "online"


def test_job_listing_filters_and_csv(api: Api) -> None:
    r = register_runner(api.client, api.db, "cpu-1")
    register_runner(api.client, api.db, "h100-1", "h100-sxm")
    trigger(api.client, api.ci, SHA)
    claim(api, r)
    got = api.client.get("/api/v1/jobs", params={"state": "claimed,running"}).json()["items"]
    assert [(j["hardware_class"], j["runner"]) for j in got] == [("cpu-x86_64", "cpu-1")]
    got = api.client.get("/api/v1/jobs", params={"hardware_class": "h100-sxm", "sha": SHA[:8]}).json()[
        "items"
    ]
    assert [j["state"] for j in got] == ["queued"]
    assert api.client.get("/api/v1/jobs", params={"project": "other"}).json()["items"] == []
    csv = api.client.get("/api/v1/jobs?format=csv")
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert lines[0].startswith("id,run_id,project,sha") and len(lines) == 3
    page = api.client.get("/api/v1/jobs?limit=1").json()
    assert len(page["items"]) == 1 and page["next_cursor"]


def test_cli_trigger(api: Api, database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    register_runner(api.client, api.db, "cpu-1")
    assert cli_main(["--database-url", database_url, "trigger", "exo", SHA, "--ref", "refs/heads/main"]) == 0
    out = capsys.readouterr().out
    assert '"fanned_out": true' in out and '"hardware_class": "cpu-x86_64"' in out
    assert cli_main(["--database-url", database_url, "trigger", "nope", SHA]) == 2
    with api.db.read_only() as session:
        assert session.scalar(select(func.count()).select_from(Run).where(Run.source == "cli")) == 1
        assert [j.state for j in session.scalars(select(Job))] == ["queued"]
