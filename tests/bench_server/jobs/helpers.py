"""Helpers for dispatch tests: runners, triggers, a live API process and a recording HTTP server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import redis

from bench_server.auth.service import create_token
from bench_server.kit.db import Database
from bench_server.kit.embedded import local_worker

REPO = Path(__file__).resolve().parents[3]
VENV_BIN = Path(sys.executable).parent


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def register_token(db: Database) -> str:
    with db.transaction() as session:
        return create_token(session, "test-register", ["register"]).token


def register_runner(
    client: Any, db: Database, name: str, hardware_class: str = "cpu-x86_64"
) -> dict[str, Any]:
    """Register a runner over HTTP; returns {"runner_id", "token", "headers"}."""
    resp = client.post(
        "/api/v1/runners/register",
        json={
            "name": name,
            "hardware_class": hardware_class,
            "labels": ["test"],
            "fingerprint": {"host": name},
        },
        headers=bearer(register_token(db)),
    )
    assert resp.status_code == 201, resp.text
    body = dict(resp.json())
    body["headers"] = bearer(body["token"])
    return body


def trigger(client: Any, ci: dict[str, str], sha: str, drain: bool = True, **over: Any) -> dict[str, Any]:
    body = {"project": "exo", "sha": sha, "ref": "refs/heads/main"} | over
    resp = client.post("/api/v1/runs", json=body, headers=ci)
    assert resp.status_code == 202, resp.text
    if drain:
        assert local_worker.drain(30)
    return dict(resp.json())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def empty_redis(url: str) -> Iterator[str]:
    """A Redis database emptied before and after use (the body of a broker fixture)."""
    r = redis.Redis.from_url(url)
    r.flushdb()
    yield url
    r.flushdb()
    r.close()


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = 15) -> None:
    """SIGTERM, then SIGKILL if it has not exited within grace_s."""
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class LiveServer:
    """The API in its own uvicorn process (BENCH_* settings from `env`), restartable on one port."""

    def __init__(self, database_url: str, log_path: Path, port: int | None = None, **settings: Any) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {
            **os.environ,
            "BENCH_DATABASE_URL": database_url,
            "BENCH_ENVIRONMENT": "test",
            # this checkout's packages, not those the venv has installed
            "PYTHONPATH": os.pathsep.join(str(p) for p in (REPO, REPO / "formats", REPO / "runners")),
            **{f"BENCH_{k.upper()}": str(v) for k, v in settings.items()},
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> LiveServer:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                str(VENV_BIN / "uvicorn"),
                "bench_server.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--timeout-graceful-shutdown",
                "2",
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        log.close()

        def healthy() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                return httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, 30, "the API to start")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    answered: int


@dataclass
class Recorder:
    """A local stand-in for api.github.com: records requests, answers from a script."""

    script: list[int | str] = field(default_factory=list)  # status codes, or "hang" to time out
    default: int = 201
    requests: list[Recorded] = field(default_factory=list)
    hang_s: float = 2.0

    def __post_init__(self) -> None:
        recorder = self
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                with recorder._lock:
                    action: int | str = recorder.script.pop(0) if recorder.script else recorder.default
                code = 504 if action == "hang" else int(action)
                with recorder._lock:
                    recorder.requests.append(
                        Recorded(
                            "POST",
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            json.loads(raw or b"null"),
                            code,
                        )
                    )
                if action == "hang":  # recorded on arrival; the client times out meanwhile
                    time.sleep(recorder.hang_s)
                payload = json.dumps({"ok": code < 400}).encode()
                try:
                    self.send_response(code)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def statuses(self, answered: int | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if answered is None or r.answered == answered]
