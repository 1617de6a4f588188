"""Registration and heartbeats: what status a runner ends up with."""

from __future__ import annotations

from sqlalchemy import select, update

from bench_server.models import Runner
from tests.bench_server.conftest import Api
from tests.bench_server.jobs.helpers import register_runner, trigger


def stored_status(api: Api, name: str) -> str:
    with api.db.read_only() as session:
        return str(session.scalars(select(Runner.status).where(Runner.name == name)).one())


def test_a_disabled_runner_that_registers_again_is_offline_until_it_checks_in(api: Api) -> None:
    first = register_runner(api.client, api.db, "cpu-1")
    assert stored_status(api, "cpu-1") == "online"
    with api.db.transaction() as session:
        session.execute(update(Runner).values(status="disabled"))
    # disabled: a heartbeat keeps it disabled and it gets no job
    assert api.client.post("/api/v1/runners/heartbeat", json={}, headers=first["headers"]).json() == {
        "status": "disabled"
    }
    trigger(api.client, api.ci, "4" * 40, hardware_classes=["cpu-x86_64"])
    assert api.client.post("/api/v1/jobs/claim?wait=0", headers=first["headers"]).status_code == 204

    again = register_runner(api.client, api.db, "cpu-1")
    assert again["runner_id"] == first["runner_id"]
    assert stored_status(api, "cpu-1") == "offline"
    assert api.client.get("/api/v1/runners").json()["items"][0]["status"] == "offline"
    assert api.client.post("/api/v1/runners/heartbeat", json={}, headers=again["headers"]).json() == {
        "status": "online"
    }
    assert stored_status(api, "cpu-1") == "online"


def test_an_offline_runner_that_registers_again_is_online(api: Api) -> None:
    register_runner(api.client, api.db, "cpu-1")
    with api.db.transaction() as session:
        session.execute(update(Runner).values(status="offline"))
    register_runner(api.client, api.db, "cpu-1")
    assert stored_status(api, "cpu-1") == "online"


def test_a_heartbeat_is_an_empty_object_and_any_key_is_refused(api: Api) -> None:
    runner = register_runner(api.client, api.db, "cpu-1")
    ok = api.client.post("/api/v1/runners/heartbeat", json={}, headers=runner["headers"])
    assert ok.status_code == 200 and ok.json() == {"status": "online"}
    old = api.client.post("/api/v1/runners/heartbeat", json={"current_job_id": 42}, headers=runner["headers"])
    assert old.status_code == 422 and old.json()["detail"][0]["field"] == "current_job_id"
    bad = api.client.post("/api/v1/runners/heartbeat", json={"load": 1}, headers=runner["headers"])
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "load"
