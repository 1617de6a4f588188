"""The embedded worker is the beat too: its periodic tick reaps leases with no claim asking."""

from __future__ import annotations

import time

from bench_server.kit.embedded import retry_delay
from tests.bench_server.conftest import make_api
from tests.bench_server.jobs.helpers import register_runner, trigger, wait_for


def test_the_tick_requeues_an_expired_lease_without_any_claim(database_url: str) -> None:
    api = make_api(database_url, lease_seconds=1, reaper_interval_s=0.2)
    try:
        with api.client:
            runner = register_runner(api.client, api.db, "cpu-1")
            trigger(api.client, api.ci, "5" * 40)
            job = api.client.post("/api/v1/jobs/claim?wait=0", headers=runner["headers"]).json()
            started = time.monotonic()
            state = wait_for(
                lambda: (s := api.client.get(f"/api/v1/jobs/{job['id']}").json())["state"] == "queued" and s,
                10,
                "the tick's reaper",
            )
            assert time.monotonic() - started >= 0.9  # not before the lease ran out
            assert state["attempt"] == 1 and "lease expired" in state["message"]
    finally:
        api.db.engine.dispose()


def test_retry_delays_double_up_to_the_cap() -> None:
    assert [retry_delay(2.0, n) for n in range(4)] == [2.0, 4.0, 8.0, 16.0]
    assert retry_delay(2.0, 20) == 300.0
