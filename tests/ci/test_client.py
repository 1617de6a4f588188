"""bench_ci's HTTP client against a local server that answers from a script and records what it got:
connection errors and 5xx are retried with the same request, a 4xx is not."""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from bench_ci.client import BenchApi, BenchApiError


class ScriptedServer:
    """Answers request n with the n-th scripted (status, body), then 200 {} for the rest."""

    def __init__(self) -> None:
        self.answers: deque[tuple[int, dict[str, Any]]] = deque()
        self.received: list[tuple[str, str, bytes]] = []
        self.port = 0
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ScriptedServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.received.append((self.command, self.path, body))
                status, answer = server.answers.popleft() if server.answers else (200, {})
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer().start()
    yield srv
    srv.stop()


def api(url: str, sleeps: list[float] | None = None, retries: int = 3) -> BenchApi:
    record = sleeps.append if sleeps is not None else lambda _: None
    return BenchApi(url, "ci-token", retries=retries, backoff=0.01, max_backoff=0.05, sleep=record)


RUN = {"project": "exo", "sha": "a" * 40, "force": True}


def test_5xx_is_retried_with_the_same_request(server: ScriptedServer) -> None:
    server.answers += [(503, {"error": "unavailable"}), (502, {}), (202, {"run_id": 7, "sha": "a" * 40})]
    sleeps: list[float] = []
    with api(server.url, sleeps) as client:
        assert client.trigger(RUN)["run_id"] == 7
    assert [(method, path) for method, path, _ in server.received] == [("POST", "/api/v1/runs")] * 3
    bodies = {body for _, _, body in server.received}
    assert len(bodies) == 1 and json.loads(bodies.pop()) == RUN  # the same bytes each time
    assert len(sleeps) == 2 and 0.01 <= sleeps[0] <= 0.02 and 0.02 <= sleeps[1] <= 0.03  # growing, jittered


def test_5xx_that_lasts_is_an_error_with_its_status(server: ScriptedServer) -> None:
    server.answers += [(500, {})] * 5
    with api(server.url, retries=2) as client, pytest.raises(BenchApiError, match="3 attempts") as info:
        client.run(1)
    assert info.value.status == 500 and len(server.received) == 3


def test_4xx_is_not_retried(server: ScriptedServer) -> None:
    server.answers += [(401, {"error": "unauthorized", "detail": "bad token"}), (404, {"error": "not_found"})]
    with api(server.url) as client:
        with pytest.raises(BenchApiError, match="401 unauthorized: bad token") as info:
            client.trigger(RUN)
        assert info.value.status == 401
        assert client.commit("exo", "b" * 40) is None  # a 404 is an answer
    assert len(server.received) == 2


def test_connection_refused_is_retried_until_the_server_is_back() -> None:
    srv = ScriptedServer().start()
    srv.stop()  # down; back on the same port after the second refused attempt
    sleeps: list[float] = []

    def wait_and_restart(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            srv.start()

    srv.answers.append((202, {"run_id": 8, "sha": "a" * 40}))
    try:
        with BenchApi(srv.url, "ci-token", retries=4, backoff=0.001, sleep=wait_and_restart) as client:
            assert client.trigger(RUN)["run_id"] == 8
    finally:
        srv.stop()
    assert len(sleeps) == 2 and len(srv.received) == 1


def test_connection_refused_that_lasts_is_an_error() -> None:
    srv = ScriptedServer().start()
    srv.stop()
    with api(srv.url, retries=1) as client, pytest.raises(BenchApiError, match="ConnectError.*2 attempts"):
        client.run(1)
