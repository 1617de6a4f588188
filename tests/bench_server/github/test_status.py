"""Commit statuses posted to a local stand-in for the GitHub API that records what it receives."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench_server.github.status import CommitStatus, post_commit_status
from bench_server.kit.settings import Settings
from bench_server.tasks import TransientError, local_worker
from tests.bench_server.conftest import Api, make_api
from tests.bench_server.jobs.helpers import Recorder, register_runner, trigger

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
        "github_retry_base_s": 0.05,
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


@pytest.fixture
def api(pg_database: str, recorder: Recorder) -> Iterator[Api]:
    api = make_api(
        pg_database,
        github_api_url=recorder.url,
        github_token="ghs_test",
        github_retry_base_s=0.05,
        github_timeout_s=0.5,
        public_url="https://bench.example.org",
    )
    with api.client:
        yield api
    api.db.engine.dispose()


def test_job_start_and_finish_post_statuses_with_retries(api: Api, recorder: Recorder) -> None:
    r = register_runner(api.client, api.db, "cpu-1")
    trigger(api.client, api.ci, SHA)
    job = api.client.post("/api/v1/jobs/claim?wait=0", headers=r["headers"]).json()
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
    r = register_runner(api.client, api.db, "cpu-1")
    trigger(api.client, api.ci, SHA)
    job = api.client.post("/api/v1/jobs/claim?wait=0", headers=r["headers"]).json()
    recorder.script = [404]
    api.client.post(f"/api/v1/jobs/{job['id']}/start", headers=r["headers"])
    assert local_worker.drain(20)
    assert [x.answered for x in recorder.statuses()] == [404]


def test_gives_up_after_max_retries(api: Api, recorder: Recorder) -> None:
    api.client.app.state.settings = api.client.app.state.settings.model_copy(  # type: ignore[attr-defined]
        update={"github_max_retries": 2}
    )
    r = register_runner(api.client, api.db, "cpu-1")
    trigger(api.client, api.ci, SHA)
    job = api.client.post("/api/v1/jobs/claim?wait=0", headers=r["headers"]).json()
    recorder.default = 500
    api.client.post(f"/api/v1/jobs/{job['id']}/start", headers=r["headers"])
    assert local_worker.drain(20)
    assert [x.answered for x in recorder.statuses()] == [500, 500, 500]
