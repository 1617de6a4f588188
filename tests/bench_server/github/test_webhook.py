"""The GitHub webhook with GitHub's own payload examples and signature vectors."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bench_server.github.signature import sign, verify
from bench_server.kit.embedded import local_worker
from bench_server.models import Commit, Job, Project, Run, WebhookDelivery
from tests.bench_server.conftest import Api, make_api
from tests.bench_server.jobs.helpers import register_runner

SECRET = "It's a Secret to Everybody"


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    api = make_api(database_url, github_webhook_secret=SECRET)
    with api.db.transaction() as session:
        session.add(
            Project(
                slug="hello",
                name="Hello-World",
                default_branch="master",
                github_repo="Codertocat/Hello-World",
            )
        )
    with api.client:
        register_runner(api.client, api.db, "cpu-1")
        yield api
    api.db.engine.dispose()


def hook(api: Api, shared: Path, file: str, event: str, delivery: str, signature: str | None = "good") -> Any:
    body = (shared / "github_webhooks" / file).read_bytes()  # signed as the exact bytes sent
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "Content-Type": "application/json"}
    if signature == "good":
        headers["X-Hub-Signature-256"] = sign(SECRET, body)
    elif signature is not None:
        headers["X-Hub-Signature-256"] = signature
    resp = api.client.post("/api/v1/github/webhook", content=body, headers=headers)
    assert local_worker.drain(30)
    return resp


def counts(api: Api) -> tuple[int, int, int, int]:
    with api.db.read_only() as session:
        return tuple(  # type: ignore[return-value]
            session.scalar(select(func.count()).select_from(m)) for m in (WebhookDelivery, Run, Job, Commit)
        )


def test_signature_vectors(shared_data: Path) -> None:
    vectors = json.loads((shared_data / "github_webhooks" / "signature_test_vectors.json").read_text())[
        "vectors"
    ]
    assert len(vectors) >= 2
    for v in vectors:
        body = v["payload"].encode()
        assert sign(v["secret"], body) == v["x_hub_signature_256"]
        assert verify(v["secret"], body, v["x_hub_signature_256"])
        assert not verify(v["secret"], body + b" ", v["x_hub_signature_256"])
        assert not verify(v["secret"] + "x", body, v["x_hub_signature_256"])
        assert not verify(v["secret"], body, v["signature_hex"])  # the prefix is required
        assert not verify("", body, v["x_hub_signature_256"])  # no secret configured: nothing passes


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, "sha1=abc", "garbage"])
def test_bad_or_missing_signature_is_401_and_stores_nothing(
    api: Api, shared_data: Path, signature: str | None
) -> None:
    before = counts(api)
    resp = hook(api, shared_data, "push.with-new-branch.payload.json", "push", "d-bad", signature)
    assert resp.status_code == 401 and resp.json()["error"] == "unauthorized"
    assert counts(api) == before


def test_signature_is_checked_before_the_body_is_parsed(api: Api) -> None:
    resp = api.client.post(
        "/api/v1/github/webhook",
        content=b"{not json",
        headers={"X-GitHub-Event": "push", "X-GitHub-Delivery": "x"},
    )
    assert resp.status_code == 401
    resp = api.client.post(
        "/api/v1/github/webhook",
        content=b"{not json",
        headers={
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": "x",
            "X-Hub-Signature-256": sign(SECRET, b"{not json"),
        },
    )
    assert resp.status_code == 400 and resp.json()["error"] == "bad_request"


def test_push_queues_jobs_and_a_redelivery_adds_nothing(api: Api, shared_data: Path) -> None:
    resp = hook(
        api, shared_data, "push.with-new-branch.payload.json", "push", "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    )
    assert resp.status_code == 202, resp.text
    assert resp.json()["status"] == "queued"
    run = api.client.get(f"/api/v1/runs/{resp.json()['run_id']}").json()
    assert run["sha"] == "6113728f27ae82c7b1a177c8d03f9e96e0adf246" and run["source"] == "webhook"
    assert [(j["suite"], j["hardware_class"], j["branch"], j["priority"]) for j in run["jobs"]] == [
        ("default", "cpu-x86_64", "master", 10)  # a push to the default branch: top priority
    ]
    with api.db.read_only() as session:
        commit = session.scalars(select(Commit)).one()
        assert (commit.branch, commit.message) == ("master", "Initial commit")
    assert counts(api) == (1, 1, 1, 1)

    again = hook(
        api, shared_data, "push.with-new-branch.payload.json", "push", "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    )
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert counts(api) == (1, 1, 1, 1)


def test_concurrent_redeliveries_make_one_set_of_jobs(api: Api, shared_data: Path) -> None:
    results: list[int] = []

    def send() -> None:
        results.append(
            hook(api, shared_data, "pull_request.opened.payload.json", "pull_request", "same-id").status_code
        )

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200, 200, 200, 202]
    assert counts(api)[:3] == (1, 1, 1)


def test_pull_request_opened_and_synchronize(api: Api, shared_data: Path) -> None:
    opened = hook(api, shared_data, "pull_request.opened.payload.json", "pull_request", "d-pr-1")
    assert opened.status_code == 202 and opened.json()["status"] == "queued"
    run = api.client.get(f"/api/v1/runs/{opened.json()['run_id']}").json()
    assert (run["pull_request"], run["ref"]) == (2, "refs/pull/2/head")
    assert [(j["branch"], j["priority"]) for j in run["jobs"]] == [("changes", 100)]
    # synchronize to the same head: a new delivery, a new run, but no second job for that commit
    sync = hook(api, shared_data, "pull_request.synchronize.payload.json", "pull_request", "d-pr-2")
    assert sync.status_code == 202
    assert counts(api)[:3] == (2, 2, 1)


def test_ping_unknown_events_and_ignored_pushes(api: Api, shared_data: Path) -> None:
    before = counts(api)
    ping = hook(api, shared_data, "ping.payload.json", "ping", "d-ping")
    assert ping.status_code == 200 and ping.json()["status"] == "pong"
    other = hook(api, shared_data, "workflow_run.completed.payload.json", "workflow_run", "d-wr")
    assert other.status_code == 202 and other.json()["status"] == "ignored"
    tag_deleted = hook(api, shared_data, "push.payload.json", "push", "d-tag")
    assert tag_deleted.status_code == 202 and tag_deleted.json()["status"] == "ignored"
    assert counts(api) == before


def test_unknown_repository_is_ignored(api: Api, shared_data: Path) -> None:
    with api.db.transaction() as session:
        session.scalars(select(Project).where(Project.slug == "hello")).one().github_repo = "someone/else"
    resp = hook(api, shared_data, "push.with-new-branch.payload.json", "push", "d-unknown")
    assert resp.status_code == 202 and resp.json()["status"] == "ignored"
    assert counts(api)[:3] == (0, 0, 0)
