"""Commit statuses posted to a local stand-in for the GitHub API that records what it receives."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from bench_server.github.status import CommitStatus, post_commit_status
from bench_server.github.tasks import resend_statuses
from bench_server.kit.embedded import local_worker
from bench_server.kit.errors import TransientError
from bench_server.kit.outbox import AppContext
from bench_server.kit.settings import Settings
from bench_server.models import GithubStatus
from tests.bench_server.conftest import Api, make_api
from tests.bench_server.jobs.helpers import Recorder, register_runner, trigger, wait_for

SHA = "3" * 40


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    yield rec
    rec.close()


def settings_for(rec: Recorder, **over: object) -> Settings:
    base = {
        "github_api_url": rec.url,
        "github_token": "ghs_test",
        "task_retry_base_s": 0.05,
        "github_timeout_s": 0.5,
    }
    return Settings(**(base | over))  # type: ignore[arg-type]


STATUS = CommitStatus("exo-explore/exo", SHA, "pending", "bench/default/cpu-x86_64", "running")


def test_post_sends_the_status_with_the_token(recorder: Recorder) -> None:
    assert post_commit_status(settings_for(recorder), STATUS) == 201
    (req,) = recorder.statuses()
    assert req.path == f"/repos/exo-explore/exo/statuses/{SHA}"
    assert req.headers["authorization"] == "Bearer ghs_test"
    assert req.headers["accept"] == "application/vnd.github+json"
    assert req.body == {"state": "pending", "context": "bench/default/cpu-x86_64", "description": "running"}


@pytest.mark.parametrize("script", [[502], [429], ["hang"]])
def test_5xx_429_and_timeouts_are_transient(recorder: Recorder, script: list[int | str]) -> None:
    recorder.script = list(script)
    with pytest.raises(TransientError):
        post_commit_status(settings_for(recorder), STATUS)


def test_4xx_is_not_an_error_to_retry(recorder: Recorder, caplog: pytest.LogCaptureFixture) -> None:
    recorder.script = [422]
    assert post_commit_status(settings_for(recorder), STATUS) == 422
    assert "GitHub refused" in caplog.text


def claimed_job(api: Api) -> tuple[dict[str, Any], dict[str, Any]]:
    """A registered runner and the job of a trigger for SHA, claimed by it."""
    runner = register_runner(api.client, api.db, "cpu-1")
    trigger(api.client, api.ci, SHA)
    return runner, api.client.post("/api/v1/jobs/claim?wait=0", headers=runner["headers"]).json()


@pytest.fixture
def api(pg_database: str, recorder: Recorder) -> Iterator[Api]:
    api = make_api(
        pg_database,
        github_api_url=recorder.url,
        github_token="ghs_test",
        task_retry_base_s=0.05,
        github_timeout_s=0.5,
        public_url="https://bench.example.org",
    )
    with api.client:
        yield api
    api.db.engine.dispose()


def test_job_start_and_finish_post_statuses_with_retries(api: Api, recorder: Recorder) -> None:
    r, job = claimed_job(api)
    recorder.script = [503, "hang"]  # the first post fails twice, then goes through
    api.client.post(f"/api/v1/jobs/{job['id']}/start", headers=r["headers"])
    assert local_worker.drain(20)
    assert [x.answered for x in recorder.statuses()] == [503, 504, 201]
    assert recorder.statuses(201)[0].body["state"] == "pending"

    api.client.post(
        f"/api/v1/jobs/{job['id']}/finish",
        json={"state": "failed", "failure_class": "oom", "message": "killed"},
        headers=r["headers"],
    )
    assert local_worker.drain(20)
    last = recorder.statuses(201)[-1]
    assert last.path == f"/repos/exo-explore/exo/statuses/{SHA}"
    assert last.body["state"] == "failure" and last.body["context"] == "bench/default/cpu-x86_64"
    assert "oom" in last.body["description"] and last.body["target_url"].startswith(
        "https://bench.example.org/"
    )


def test_a_4xx_is_posted_once(api: Api, recorder: Recorder) -> None:
    r, job = claimed_job(api)
    recorder.script = [404]
    api.client.post(f"/api/v1/jobs/{job['id']}/start", headers=r["headers"])
    assert local_worker.drain(20)
    assert [x.answered for x in recorder.statuses()] == [404]
    # GitHub answered: a sweep does not post it again
    assert resend_statuses(ctx_of(api, github_status_resend_after_s=0)) == []


def test_gives_up_after_max_retries(api: Api, recorder: Recorder) -> None:
    api.client.app.state.settings = api.client.app.state.settings.model_copy(  # type: ignore[attr-defined]
        update={"task_max_retries": 2}
    )
    r, job = claimed_job(api)
    recorder.default = 500
    api.client.post(f"/api/v1/jobs/{job['id']}/start", headers=r["headers"])
    assert local_worker.drain(20)
    assert [x.answered for x in recorder.statuses()] == [500, 500, 500]


def ctx_of(api: Api, **settings: object) -> AppContext:
    app_settings = api.client.app.state.settings  # type: ignore[attr-defined]
    return AppContext(api.db, app_settings.model_copy(update=settings))


def acknowledged(api: Api) -> list[tuple[int, str, int | None]]:
    with api.db.read_only() as session:
        rows = session.scalars(select(GithubStatus).order_by(GithubStatus.job_id))
        return [(row.job_id, row.job_state, row.http_status) for row in rows]


def test_a_status_that_exhausted_its_retries_is_posted_again(api: Api, recorder: Recorder) -> None:
    api.client.app.state.settings = api.client.app.state.settings.model_copy(  # type: ignore[attr-defined]
        update={"task_max_retries": 1}
    )
    r, job = claimed_job(api)
    recorder.default = 500  # GitHub is down for the post and its one retry
    api.client.post(f"/api/v1/jobs/{job['id']}/start", headers=r["headers"])
    assert local_worker.drain(20)
    assert [x.answered for x in recorder.statuses()] == [500, 500]
    assert acknowledged(api) == []

    # not yet: the job changed less than github_status_resend_after_s ago (the default, 10 minutes)
    assert resend_statuses(ctx_of(api)) == []
    recorder.default = 201
    assert resend_statuses(ctx_of(api, github_status_resend_after_s=0)) == [job["id"]]
    assert local_worker.drain(20)
    (posted,) = recorder.statuses(201)
    assert posted.body["state"] == "pending" and "running" in posted.body["description"]
    assert acknowledged(api) == [(job["id"], "running", 201)]
    assert resend_statuses(ctx_of(api, github_status_resend_after_s=0)) == []  # delivered

    # the finish goes through at once; nothing is left for the sweep
    api.client.post(f"/api/v1/jobs/{job['id']}/finish", json={"state": "succeeded"}, headers=r["headers"])
    assert local_worker.drain(20)
    assert recorder.statuses(201)[-1].body["state"] == "success"
    assert acknowledged(api) == [(job["id"], "succeeded", 201)]
    assert resend_statuses(ctx_of(api, github_status_resend_after_s=0)) == []


def test_the_embedded_tick_runs_the_sweep(pg_database: str, recorder: Recorder) -> None:
    api = make_api(
        pg_database,
        github_api_url=recorder.url,
        github_token="ghs_test",
        task_retry_base_s=0.05,
        task_max_retries=0,
        github_timeout_s=0.5,
        github_status_resend_after_s=0.3,
    )
    try:
        with api.client:
            r, job = claimed_job(api)
            recorder.script = [502]  # the post fails once and is not retried (task_max_retries=0)
            api.client.post(f"/api/v1/jobs/{job['id']}/start", headers=r["headers"])
            wait_for(lambda: recorder.statuses(201), 10, "the sweep to post the status again")
            assert [x.answered for x in recorder.statuses()][:2] == [502, 201]
            wait_for(lambda: acknowledged(api) == [(job["id"], "running", 201)], 10, "the acknowledgement")
    finally:
        api.db.engine.dispose()
