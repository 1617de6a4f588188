"""A small real HTTP server (http.server in a thread) that speaks the runner contract.

It records every request, stores results batches by idempotency key (a re-post of the same
body is a duplicate, a different body 409), and can be told to fail: answer 503 a number of
times, reject keys, take a lease away, hand out jobs. It stands in for the API server in tests
that must not depend on it, and can be stopped and restarted on the same port to simulate an
outage.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class State:
    """Everything the fake server knows; shared across restarts."""

    tokens: set[str] = field(default_factory=lambda: {"runner-token"})
    registration_token: str = "reg-token"
    unavailable: int = 0  # answer this many requests with 503 first
    unavailable_paths: tuple[str, ...] = ("/api/v1/results",)
    reject: dict[str, tuple[int, str]] = field(default_factory=dict)  # key -> (status, error)
    stored: dict[str, Any] = field(default_factory=dict)  # key -> body
    stored_order: list[str] = field(default_factory=list)
    jobs: deque[dict[str, Any]] = field(default_factory=deque)
    lease_conflict: set[int] = field(default_factory=set)
    claim_wait_cap: float = 0.2
    requests: list[Seen] = field(default_factory=list)
    logs: dict[int, str] = field(default_factory=dict)
    finished: dict[int, dict[str, Any]] = field(default_factory=dict)
    released: list[int] = field(default_factory=list)
    started: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def seen(self, method: str, path_prefix: str) -> list[Seen]:
        with self.lock:
            return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return False


def _handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: Any = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, error: str, detail: Any) -> None:
            self._send(status, {"error": error, "detail": detail})

        def _handle(self) -> None:
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            seen = Seen(self.command, url.path, parse_qs(url.query), dict(self.headers.items()), body)
            with state.lock:
                state.requests.append(seen)
                if state.unavailable > 0 and url.path.startswith(state.unavailable_paths):
                    state.unavailable -= 1
                    self._error(503, "unavailable", "try again later")
                    return
            path = url.path.removeprefix("/api/v1")
            auth = self.headers.get("Authorization", "")
            token = auth.removeprefix("Bearer ").strip()
            if path == "/runners/register":
                if token != state.registration_token:
                    self._error(401, "unauthorized", "invalid registration token")
                    return
                with state.lock:
                    state.tokens.add("runner-token-7")
                self._send(201, {"runner_id": 7, "token": "runner-token-7"})
                return
            if token not in state.tokens:
                self._error(401, "unauthorized", "missing or invalid bearer token")
                return
            if path == "/results" and self.command == "POST":
                self._results(seen.json())
            elif path == "/runners/heartbeat":
                self._send(200, {"status": "online"})
            elif path == "/jobs/claim":
                self._claim(float(seen.query.get("wait", ["30"])[0]))
            elif path.startswith("/jobs/"):
                self._job(path, seen)
            else:
                self._error(404, "not_found", path)

        def _results(self, payload: dict[str, Any]) -> None:
            key = payload.get("idempotency_key")
            if not key:
                self._error(422, "validation_error", [{"loc": ["idempotency_key"], "msg": "required"}])
                return
            with state.lock:
                if key in state.reject:
                    status, error = state.reject[key]
                    self._error(status, error, f"rejected {key}")
                    return
                if key in state.stored:
                    if state.stored[key] == payload:
                        self._send(
                            200,
                            {
                                "batch_id": state.stored_order.index(key) + 1,
                                "duplicate": True,
                                "results": 0,
                                "failures": 0,
                            },
                        )
                    else:
                        self._error(409, "idempotency_conflict", "same key, different body")
                    return
                state.stored[key] = payload
                state.stored_order.append(key)
                batch_id = len(state.stored_order)
            self._send(
                201,
                {
                    "batch_id": batch_id,
                    "duplicate": False,
                    "results": len(payload.get("results", [])),
                    "failures": len(payload.get("failures", [])),
                },
            )

        def _claim(self, wait: float) -> None:
            deadline = time.monotonic() + min(wait, state.claim_wait_cap)
            while True:
                with state.lock:
                    if state.jobs:
                        job = state.jobs.popleft()
                        break
                if time.monotonic() >= deadline:
                    self._send(204)
                    return
                time.sleep(0.02)
            self._send(200, job)

        def _job(self, path: str, seen: Seen) -> None:
            parts = path.strip("/").split("/")
            if len(parts) != 3 or not parts[1].isdigit():
                self._error(404, "not_found", path)
                return
            job_id, action = int(parts[1]), parts[2]
            with state.lock:
                if action == "lease":
                    if job_id in state.lease_conflict:
                        self._error(409, "lease_lost", "the job was cancelled")
                        return
                    self._send(200, {"lease_expires_at": "2030-01-01T00:00:00Z"})
                elif action == "start":
                    state.started.append(job_id)
                    self._send(200, {"state": "running"})
                elif action == "log" and seen.method == "PUT":
                    state.logs[job_id] = seen.body.decode()
                    self._send(200, {"bytes": len(seen.body)})
                elif action == "finish":
                    state.finished[job_id] = seen.json()
                    self._send(200, {"state": seen.json()["state"]})
                elif action == "release":
                    state.released.append(job_id)
                    self._send(200, {"state": "queued"})
                else:
                    self._error(404, "not_found", path)

        def do_POST(self) -> None:
            self._handle()

        def do_PUT(self) -> None:
            self._handle()

        def do_GET(self) -> None:
            self._handle()

    return Handler


class FakeServer:
    def __init__(self, state: State | None = None, port: int = 0) -> None:
        self.state = state or State()
        self.port = port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeServer:
        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self.state))
        httpd.daemon_threads = True
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
