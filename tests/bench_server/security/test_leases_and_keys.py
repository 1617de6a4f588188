"""Results for a job come only from the runner holding its lease, and idempotency keys belong to
whoever posted them: another token can neither post for a job it does not hold nor take the real
runner's key first."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bench_server.models import IngestBatch, Job
from tests.bench_server.conftest import Api, batch, result
from tests.bench_server.jobs.helpers import register_runner, trigger

SHA = "c" * 40


def job_batch(job: dict[str, Any], key: str, value: float = 1.0) -> dict[str, Any]:
    return batch(
        key=key,
        sha=job["commit"]["sha"],
        job_id=job["id"],
        results=[result(suite="default", value=value)],
    )


def claimed_job(api: Api, runner: dict[str, Any]) -> dict[str, Any]:
    trigger(api.client, api.ci, SHA)
    resp = api.client.post("/api/v1/jobs/claim?wait=0", headers=runner["headers"])
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def test_a_runner_cannot_post_results_for_a_job_another_runner_holds(api: Api) -> None:
    holder = register_runner(api.client, api.db, "holder")
    other = register_runner(api.client, api.db, "other")
    job = claimed_job(api, holder)
    resp = api.ingest(job_batch(job, "forged"), headers=other["headers"])
    assert resp.status_code == 409, resp.text
    assert resp.json()["error"] == "lease_lost"
    with api.db.read_only() as session:
        assert session.scalars(select(IngestBatch)).all() == []
    # the holder's results are still taken
    assert api.ingest(job_batch(job, "real"), headers=holder["headers"]).status_code == 201


def test_a_ci_or_admin_token_cannot_post_results_for_a_job(api: Api) -> None:
    holder = register_runner(api.client, api.db, "holder")
    job = claimed_job(api, holder)
    for headers in (api.ci, api.admin, api.runner):  # api.runner: a runner-scope token of no runner
        resp = api.ingest(job_batch(job, f"k-{len(headers)}"), headers=headers)
        assert resp.status_code == 403, resp.text
        assert "job_id" in str(resp.json()["detail"])
    with api.db.read_only() as session:
        assert session.scalars(select(IngestBatch)).all() == []
    # without a job (the Actions path, `bench-runner execute`) a ci token posts as before
    assert api.ingest(batch(key="actions", sha=SHA), headers=api.ci).status_code == 201


def test_forged_results_do_not_let_the_reaper_close_the_job(api: Api) -> None:
    from datetime import timedelta

    from bench_server.jobs import service
    from bench_server.models.base import utcnow
    from tests.bench_server.jobs.test_jobs_api import ctx_of

    holder = register_runner(api.client, api.db, "holder")
    other = register_runner(api.client, api.db, "other")
    job = claimed_job(api, holder)
    api.ingest(job_batch(job, "forged"), headers=other["headers"])
    with api.db.transaction() as session:
        report = service.reap(session, ctx_of(api), now=utcnow() + timedelta(seconds=400))
    assert report.finished == [] and report.requeued == [job["id"]]


def test_results_for_a_job_no_longer_held_are_refused(api: Api) -> None:
    holder = register_runner(api.client, api.db, "holder")
    job = claimed_job(api, holder)
    api.client.post(f"/api/v1/jobs/{job['id']}/release", headers=holder["headers"])
    resp = api.ingest(job_batch(job, "late"), headers=holder["headers"])
    assert (resp.status_code, resp.json()["error"]) == (409, "lease_lost")


def test_the_runner_that_finished_a_job_may_still_deliver_its_spooled_results(api: Api) -> None:
    holder = register_runner(api.client, api.db, "holder")
    other = register_runner(api.client, api.db, "other")
    job = claimed_job(api, holder)
    api.client.post(
        f"/api/v1/jobs/{job['id']}/finish", json={"state": "succeeded"}, headers=holder["headers"]
    )
    assert api.ingest(job_batch(job, "forged-late"), headers=other["headers"]).status_code == 409
    assert api.ingest(job_batch(job, "spooled"), headers=holder["headers"]).status_code == 201


def test_a_retry_of_a_stored_batch_is_a_duplicate_even_after_the_job_finished(api: Api) -> None:
    holder = register_runner(api.client, api.db, "holder")
    job = claimed_job(api, holder)
    body = job_batch(job, f"runner-{holder['runner_id']}/job-{job['id']}/attempt-1")
    assert api.ingest(body, headers=holder["headers"]).status_code == 201
    api.client.post(
        f"/api/v1/jobs/{job['id']}/finish", json={"state": "succeeded"}, headers=holder["headers"]
    )
    again = api.ingest(body, headers=holder["headers"])
    assert again.status_code == 200 and again.json()["duplicate"] is True


def test_another_token_cannot_take_the_runners_idempotency_key_first(api: Api) -> None:
    holder = register_runner(api.client, api.db, "holder")
    job = claimed_job(api, holder)
    key = f"runner-{holder['runner_id']}/job-{job['id']}/attempt-{job['attempt']}"  # predictable
    squatter = api.ingest(batch(key=key, sha=SHA, results=[result(value=666.0)]), headers=api.ci)
    assert squatter.status_code == 201
    real = api.ingest(job_batch(job, key, value=1.0), headers=holder["headers"])
    assert real.status_code == 201, real.text  # neither a 409 nor the squatter's batch
    assert real.json()["duplicate"] is False
    with api.db.read_only() as session:
        batches = session.scalars(select(IngestBatch).order_by(IngestBatch.id)).all()
        assert [b.job_id for b in batches] == [None, job["id"]]
        assert session.get_one(Job, job["id"]).runner_id == holder["runner_id"]
    # and each poster's retry still finds its own batch
    assert api.ingest(job_batch(job, key, value=1.0), headers=holder["headers"]).json()["duplicate"] is True
    repeat = api.ingest(batch(key=key, sha=SHA, results=[result(value=666.0)]), headers=api.ci)
    assert repeat.status_code == 200 and repeat.json()["duplicate"] is True


def test_a_runners_key_survives_a_new_token_for_the_same_runner(api: Api) -> None:
    """Keys are scoped to the runner, not its token: a re-registered runner delivering its spool
    with its new token finds the batches its old token stored."""
    first = register_runner(api.client, api.db, "holder")
    body = batch(key="runner-x/spooled", sha=SHA)
    assert api.ingest(body, headers=first["headers"]).status_code == 201
    second = register_runner(api.client, api.db, "holder")  # same name: same runner, new token
    assert second["runner_id"] == first["runner_id"]
    again = api.ingest(body, headers=second["headers"])
    assert again.status_code == 200 and again.json()["duplicate"] is True
