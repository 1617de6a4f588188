"""The runner against the real API (bench_server in a uvicorn process over SQLite).

The server is a separate process on a real port, as in production: it can be down while the
runner works, and come up later on the same port.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from bench_runner.agent import Agent, build_payload
from bench_runner.cli import main
from bench_runner.client import BenchClient
from bench_runner.config import RunnerConfig, load_config
from bench_runner.process import free_port
from bench_runner.records import FailureRecord, ResultRecord
from bench_runner.spool import Spool

from .conftest import Repo

pytest.importorskip("bench_server.app")
pytest.importorskip("uvicorn")

from bench_server.auth.service import create_token
from bench_server.kit.db import Database
from bench_server.kit.migrate import upgrade
from bench_server.models import Project

REPO_ROOT = Path(__file__).resolve().parents[3]
PY = sys.executable


@dataclass
class Api:
    url: str
    db_url: str
    tokens: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Api:
        env = {
            **os.environ,
            "BENCH_DATABASE_URL": self.db_url,
            "BENCH_ENVIRONMENT": "test",
            "BENCH_CLAIM_POLL_INTERVAL_S": "0.05",
            # this checkout's server and runner packages, not whichever one is installed
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "runners")]),
        }
        port = self.url.rsplit(":", 1)[1]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    PY,
                    "-m",
                    "uvicorn",
                    "bench_server.app:create_app",
                    "--factory",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    port,
                    "--log-level",
                    "warning",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
            )
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"API exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"API did not start: {self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def get(self, path: str, **params: Any) -> Any:
        resp = httpx.get(f"{self.url}/api/v1{path}", params=params, timeout=10)
        assert resp.status_code == 200, resp.text
        return resp.json()


@pytest.fixture
def api(tmp_path: Path, git_repo: Repo) -> Iterator[Api]:
    db_url = f"sqlite:///{tmp_path / 'bench.db'}"
    upgrade(db_url)
    db = Database.from_url(db_url)
    with db.transaction() as session:
        session.add(Project(slug="demo", name="demo", default_branch="main", clone_url=git_repo.url))
        tokens = {
            s: create_token(session, f"test-{s}", [s]).token for s in ("runner", "ci", "register", "admin")
        }
    db.engine.dispose()
    server = Api(f"http://127.0.0.1:{free_port()}", db_url, tokens, tmp_path / "api.log")
    try:
        yield server
    finally:
        server.stop()


def results_batch(key: str, sha: str, value: float) -> dict[str, Any]:
    return build_payload(
        idempotency_key=key,
        project="demo",
        commit={"sha": sha, "branch": "main"},
        hardware_class="cpu-x86_64",
        fingerprint={"kind": "machine", "arch": "x86_64"},
        hostname="runner-test",
        results=[
            ResultRecord(
                suite="smoke",
                benchmark="gen",
                metric="tokens_per_s",
                value=value,
                unit="tok/s",
                direction="higher",
                params={"isl": 16},
            )
        ],
        failures=[FailureRecord(suite="smoke", benchmark="crashes", failure_class="crash", message="exit 3")],
    )


def test_spooled_while_the_server_is_down_delivered_when_it_starts(
    api: Api, git_repo: Repo, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool")
    batches = [
        results_batch(f"runner-1/job-{n}/attempt-1", sha, 40.0 + n) for n, sha in enumerate(git_repo.shas)
    ]
    with BenchClient(api.url, api.tokens["runner"], retries=1, backoff=0.01) as client:
        for b in batches:  # nothing listens on the port yet
            assert spool.submit(client, b).remaining >= 1
        assert len(spool.pending()) == 2

        api.start()
        report = spool.deliver(client)
        assert report.delivered == [b["idempotency_key"] for b in batches] and report.complete

        # a re-post after a lost answer is a duplicate: deleted, never stored twice
        spool.enqueue(batches[0])
        assert spool.deliver(client).duplicates == [batches[0]["idempotency_key"]]
    assert spool.pending() == []

    rows = api.get("/results", project="demo")["items"]
    assert sorted(
        (r["commit"] if isinstance(r["commit"], str) else r["commit"]["sha"], r["value"]) for r in rows
    ) == sorted(zip(git_repo.shas, (40.0, 41.0), strict=True))
    failures = api.get("/failures", project="demo")["items"]
    assert len(failures) == 2 and {f["failure_class"] for f in failures} == {"crash"}


SUITES = {
    "smoke": f"""
        name = "smoke"
        [build]
        commands = ["echo built > build.txt"]
        [[benchmark]]
        name = "gen"
        kind = "command"
        command = "{PY} bench.py ok 21"
        params = {{ isl = 16 }}
        [[benchmark]]
        name = "crashes"
        kind = "command"
        command = "{PY} bench.py crash"
    """,
    "long": f"""
        name = "long"
        [[benchmark]]
        name = "sleeps"
        kind = "command"
        command = ["{PY}", "bench.py", "sleep", "__PIDFILE__"]
        timeout = 120
    """,
}


def setup_runner(api: Api, tmp_path: Path, suite: str, sha: str) -> tuple[RunnerConfig, Path, int]:
    """Register a runner with `bench-runner register`, trigger a run of `suite`; the queued job id."""
    suites = tmp_path / "suites"
    suites.mkdir(exist_ok=True)
    for name, text in SUITES.items():
        text = text.replace("__PIDFILE__", str(tmp_path / "sleeper.pid"))
        (suites / f"{name}.toml").write_text(textwrap.dedent(text))
    api.start()
    config_path = tmp_path / "config.toml"
    args = ["register", "--server", api.url, "--registration-token", api.tokens["register"], "--name"]
    args += ["cpu-runner-1", "--hardware-class", "cpu-x86_64", "--suites-dir", str(suites)]
    assert main([*args, "--work-dir", str(tmp_path / "work"), "--config", str(config_path)]) == 0
    config = load_config(config_path)
    assert config.runner_id is not None and config.token

    body = {"project": "demo", "sha": sha, "branch": "main", "suites": [suite]}
    resp = httpx.post(f"{api.url}/api/v1/runs", json=body, headers=bearer(api.tokens["ci"]), timeout=10)
    assert resp.status_code == 202, resp.text
    deadline = time.monotonic() + 15
    while not (jobs := api.get("/jobs", state="queued")["items"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(jobs) == 1
    return config, config_path, int(jobs[0]["id"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def agent_for(config: RunnerConfig, tmp_path: Path, lines: list[str], **kw: Any) -> Agent:
    return Agent(
        config.server_url,
        config.token,
        runner_id=config.runner_id,
        hardware_class=config.hardware_class,
        fingerprint={"kind": "machine", "arch": "x86_64"},
        suites_dir=str(config.suites_dir),
        work_dir=tmp_path / "work",
        spool_dir=tmp_path / "spool",
        wait=2,
        heartbeat_interval=0.5,
        log=lines.append,
        **kw,
    )


def test_register_claim_run_post_finish_against_the_server(
    api: Api, git_repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    sha = git_repo.shas[1]
    config, _, job_id = setup_runner(api, tmp_path, "smoke", sha)
    lines: list[str] = []
    assert agent_for(config, tmp_path, lines).run(max_jobs=1) == 0

    job = api.get(f"/jobs/{job_id}")
    assert job["state"] == "failed", lines
    assert job["failure_class"] == "crash"
    assert "== suite smoke" in job["log"] and "boom" in job["log"]  # the uploaded log tail
    rows = api.get("/results", project="demo", commit=sha)["items"]
    assert {(r["benchmark"], r["metric"], r["value"]) for r in rows} == {
        ("gen", "tokens_per_s", 21.0),
        ("gen", "ttft_ms", 12.0),
    }
    failures = api.get("/failures", project="demo", commit=sha)["items"]
    assert [(f["benchmark"], f["failure_class"]) for f in failures] == [("crashes", "crash")]
    assert list((tmp_path / "spool").glob("*.json")) == []


def test_cancel_on_the_server_stops_the_running_job(
    api: Api, git_repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    config, _, job_id = setup_runner(api, tmp_path, "long", git_repo.shas[1])
    pidfile = tmp_path / "sleeper.pid"

    def cancel_when_running() -> None:
        deadline = time.monotonic() + 30
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        httpx.post(
            f"{api.url}/api/v1/jobs/{job_id}/cancel",
            json={"reason": "test"},
            headers=bearer(api.tokens["admin"]),
            timeout=10,
        )

    threading.Thread(target=cancel_when_running, daemon=True).start()
    lines: list[str] = []
    started = time.monotonic()
    assert agent_for(config, tmp_path, lines, lease_interval=0.2).run(max_jobs=1) == 0
    assert time.monotonic() - started < 60
    assert pidfile.exists(), lines
    assert any("lease lost or job cancelled" in line for line in lines), lines
    assert api.get(f"/jobs/{job_id}")["state"] == "cancelled"
    assert api.get("/results", project="demo")["items"] == []
    assert api.get("/failures", project="demo")["items"] == []


def test_sigterm_releases_the_job_back_to_the_queue(api: Api, git_repo: Repo, tmp_path: Path) -> None:
    _, config_path, job_id = setup_runner(api, tmp_path, "long", git_repo.shas[1])
    pidfile = tmp_path / "sleeper.pid"
    env = {**os.environ, "BENCH_RUNNER_CONFIG": str(config_path), "XDG_STATE_HOME": str(tmp_path / "state")}
    proc = subprocess.Popen(
        [PY, "-m", "bench_runner.cli", "agent", "--grace", "1", "--wait", "1", "--heartbeat", "0.5"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not pidfile.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert pidfile.exists()
        assert api.get(f"/jobs/{job_id}")["state"] == "running"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "released" in err
    assert api.get(f"/jobs/{job_id}")["state"] == "queued"
    assert api.get("/results", project="demo")["items"] == []
