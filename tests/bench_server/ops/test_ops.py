"""`/api/v1/health` and the Prometheus exposition at `/metrics`."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.bench_server.conftest import Api
from tests.bench_server.jobs.helpers import register_runner, trigger


def test_health_names_the_database(api: Api) -> None:
    body = api.client.get("/api/v1/health").json()
    assert body["status"] == "ok" and body["database"] in ("postgresql", "sqlite")


def test_metrics_count_jobs_by_state_and_runners_by_status(api: Api) -> None:
    runner = register_runner(api.client, api.db, "cpu-1")
    register_runner(api.client, api.db, "h100-1", "h100-sxm")
    trigger(api.client, api.ci, "6" * 40)
    api.client.post("/api/v1/jobs/claim?wait=0", headers=runner["headers"])

    resp = api.client.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(resp.text)}
    assert families["bench_jobs"].type == "gauge" and families["bench_runners"].type == "gauge"
    jobs = {s.labels["state"]: s.value for s in families["bench_jobs"].samples}
    runners = {s.labels["status"]: s.value for s in families["bench_runners"].samples}
    assert jobs == {"claimed": 1.0, "queued": 1.0}
    assert runners == {"online": 2.0}
