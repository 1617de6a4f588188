"""The webhook against hostile senders: payloads of the wrong shape, replays of a captured body,
and the order of its checks (signature before parsing, body size before the body is read)."""

from __future__ import annotations

import copy
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bench_server.github import signature
from bench_server.github.signature import sign
from bench_server.kit.embedded import local_worker
from tests.bench_server.conftest import Api, make_api
from tests.bench_server.github.test_webhook import SECRET, counts
from tests.bench_server.jobs.helpers import LiveServer, register_runner
from tests.bench_server.security.conftest import table_counts


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    api = make_api(database_url, github_webhook_secret=SECRET)
    api.client = TestClient(api.client.app, raise_server_exceptions=False)
    with api.client:
        register_runner(api.client, api.db, "cpu-1")
        yield api
    api.db.engine.dispose()


def payload(shared_data: Path, name: str) -> dict[str, Any]:
    return dict(json.loads((shared_data / "github_webhooks" / name).read_text()))


def send(api: Api, body: bytes, event: str, delivery: str) -> Any:
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign(SECRET, body),
        "Content-Type": "application/json",
    }
    resp = api.client.post("/api/v1/github/webhook", content=body, headers=headers)
    assert local_worker.drain(30)
    return resp


def use_repo(body: dict[str, Any], api: Api) -> dict[str, Any]:
    """Point a GitHub example payload at the test project (exo-explore/exo)."""
    body = copy.deepcopy(body)
    body["repository"]["full_name"] = "exo-explore/exo"
    return body


def push_with(shared_data: Path, api: Api, **changes: Any) -> dict[str, Any]:
    body = use_repo(payload(shared_data, "push.with-new-branch.payload.json"), api)
    body["ref"] = "refs/heads/main"
    body.update(changes)
    return body


def pr_with(shared_data: Path, api: Api, **changes: Any) -> dict[str, Any]:
    body = use_repo(payload(shared_data, "pull_request.opened.payload.json"), api)
    for path, value in changes.items():
        target = body
        *parents, last = path.split("__")
        for p in parents:
            target = target[p]
        target[last] = value
    return body


def wrong_shapes(shared_data: Path, api: Api) -> list[tuple[str, str, dict[str, Any], str]]:
    after = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
    return [
        ("repository is a string", "push", push_with(shared_data, api, repository="exo-explore/exo"),
         "repository"),
        ("full_name is a number", "push", push_with(shared_data, api, repository={"full_name": 7}),
         "repository.full_name"),
        ("commit without id", "push",
         push_with(shared_data, api, commits=[{"message": "a"}, {"id": after}]), "commits.0.id"),
        ("commits is an object", "push", push_with(shared_data, api, commits={"id": after}), "commits"),
        ("head_commit author is a string", "push",
         push_with(shared_data, api, head_commit={"message": "m", "author": "me"}), "head_commit.author"),
        ("after is not a sha", "push", push_with(shared_data, api, after="HEAD"), "after"),
        ("ref with NUL", "push", push_with(shared_data, api, ref="refs/heads/a\x00"), "ref"),
        ("message with NUL", "push",
         push_with(shared_data, api, head_commit={"message": "a\x00", "author": {"name": "x"}}),
         "head_commit.message"),
        ("PR number is a string", "pull_request", pr_with(shared_data, api, pull_request__number="two"),
         "pull_request.number"),
        ("PR number is negative", "pull_request", pr_with(shared_data, api, pull_request__number=-2),
         "pull_request.number"),
        ("PR number over 32 bits", "pull_request", pr_with(shared_data, api, pull_request__number=2**40),
         "pull_request.number"),
        ("PR head is a string", "pull_request", pr_with(shared_data, api, pull_request__head="abc"),
         "pull_request.head"),
        ("PR without head sha", "pull_request", pr_with(shared_data, api, pull_request__head={"ref": "x"}),
         "pull_request.head.sha"),
        ("pull_request is a list", "pull_request", pr_with(shared_data, api, pull_request=[1]),
         "pull_request"),
    ]  # fmt: skip


def test_payloads_of_the_wrong_shape_are_a_422_naming_the_field(api: Api, shared_data: Path) -> None:
    before = table_counts(api.db)
    for i, (case, event, body, field) in enumerate(wrong_shapes(shared_data, api)):
        resp = send(api, json.dumps(body).encode(), event, f"bad-{i}")
        assert resp.status_code == 422, (case, resp.text)
        assert resp.json()["error"] == "validation_error", case
        assert field in [d["field"] for d in resp.json()["detail"]], (case, resp.json())
    assert table_counts(api.db) == before


def test_a_replayed_body_under_a_fresh_delivery_id_queues_nothing_new(api: Api, shared_data: Path) -> None:
    for name, event in (
        ("push.with-new-branch.payload.json", "push"),
        ("pull_request.opened.payload.json", "pull_request"),
    ):
        body = json.dumps(use_repo(payload(shared_data, name), api)).encode()
        first = send(api, body, event, f"{event}-original")
        assert first.status_code == 202 and first.json()["status"] == "queued", first.text
        after_first = counts(api)
        for n in range(3):
            replay = send(api, body, event, f"{event}-replay-{n}")
            assert replay.status_code == 200 and replay.json()["status"] == "duplicate", replay.text
        assert counts(api) == after_first


def test_a_new_push_of_the_same_branch_still_queues(api: Api, shared_data: Path) -> None:
    first = push_with(shared_data, api)
    assert send(api, json.dumps(first).encode(), "push", "p1").json()["status"] == "queued"
    # a force-push back to the same commit from elsewhere: another `before`, another event
    again = dict(first, before="a" * 40)
    assert send(api, json.dumps(again).encode(), "push", "p2").json()["status"] == "queued"


def test_the_signature_is_compared_in_constant_time_before_parsing(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[bytes] = []
    real = signature.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(signature.hmac, "compare_digest", spy)
    resp = api.client.post(
        "/api/v1/github/webhook",
        content=b"[" * 100_000,  # would be a RecursionError if parsed
        headers={
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": "x",
            "X-Hub-Signature-256": "sha256=" + "0" * 64,
        },
    )
    assert resp.status_code == 401
    assert compared == [b"sha256=" + b"0" * 64]
    # signed, the same body is a 400, not a 500
    resp = send(api, b"[" * 100_000, "push", "deep")
    assert resp.status_code == 400, resp.text


@pytest.fixture
def live(pg_database: str, tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(
        pg_database, tmp_path / "api.log", max_body_bytes=64 * 1024, github_webhook_secret=SECRET
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _request_head(path: str, extra: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: big\r\n"
        f"X-Hub-Signature-256: sha256={'0' * 64}\r\nContent-Type: application/json\r\n{extra}\r\n"
    ).encode()


def _status_of(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1])


def test_bodies_over_the_limit_are_refused_before_they_are_read_whole(live: LiveServer) -> None:
    # Content-Length over the limit: refused on the headers alone, before any body byte is sent.
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(_request_head("/api/v1/github/webhook", f"Content-Length: {1 << 30}\r\n"))
        assert _status_of(sock) == 413
    # Chunked, no length: refused once the limit is passed, while the sender still has most of a
    # 64 MiB body to go.
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(_request_head("/api/v1/github/webhook", "Transfer-Encoding: chunked\r\n"))
        chunk = b"x" * 16384
        sent = 0
        sock.settimeout(0.05)
        status = None
        deadline = time.monotonic() + 20
        while status is None and time.monotonic() < deadline and sent < 64 << 20:
            try:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
                if sock.recv(1, socket.MSG_PEEK):
                    sock.settimeout(10)
                    status = _status_of(sock)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        if status is None:
            sock.settimeout(10)
            status = _status_of(sock)
        assert status == 413
        assert sent < 4 << 20, f"the server read {sent} bytes before refusing"
