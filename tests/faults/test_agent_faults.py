"""Faults with real processes: the API in uvicorn (PostgreSQL), runners as `bench-runner agent`
subprocesses, a target git repository whose benchmark script the agents run.

- a runner SIGKILLed mid-job: the lease expires, the job is requeued, another runner finishes it,
  and only the second attempt's results are stored;
- the API stopped while a runner posts: the results wait in the runner's spool and are delivered
  once, after the API is back; the job is closed from them rather than run again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bench_server.auth.service import create_token
from bench_server.kit.db import Database
from bench_server.models import IngestBatch, Job, Project, Result
from tests.bench_server.jobs.helpers import REPO, VENV_BIN, LiveServer, bearer, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PY = sys.executable
BENCH_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    mode, ctl = sys.argv[1], sys.argv[2]
    out = os.environ["BENCH_RESULTS_FILE"]
    def result(value):
        json.dump({"results": [{"metric": "tokens_per_s", "value": value, "unit": "tok/s",
                                "direction": "higher"}], "failures": []}, open(out, "w"))
    if mode == "killable":
        first = os.path.join(ctl, "first")
        if not os.path.exists(first):      # attempt 1: announce ourselves and hang
            open(first, "w").write(str(os.getpid()))
            time.sleep(120)
        result(50.0)
    elif mode == "slowpost":
        open(os.path.join(ctl, "finishing"), "w").write(str(os.getpid()))
        deadline = time.time() + 60
        while not os.path.exists(os.path.join(ctl, "go")) and time.time() < deadline:
            time.sleep(0.05)
        result(60.0)
    """
)
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.org",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.org",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True, env={**os.environ, **GIT_ENV}
    ).stdout.strip()


@dataclass
class Stack:
    server: LiveServer
    db: Database
    ci: dict[str, str]
    register_token: str
    sha: str
    ctl: Path
    suites: Path
    tmp: Path


@pytest.fixture
def stack(pg_database: str, tmp_path: Path) -> Iterator[Stack]:
    target = tmp_path / "target"
    target.mkdir()
    git(target, "init", "-q", "-b", "main")
    (target / "bench.py").write_text(BENCH_SCRIPT)
    git(target, "add", "bench.py")
    git(target, "commit", "-q", "-m", "bench script")
    sha = git(target, "rev-parse", "HEAD")
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    suites = tmp_path / "suites"
    suites.mkdir()
    for mode in ("killable", "slowpost"):
        (suites / f"{mode}.toml").write_text(
            textwrap.dedent(f"""
            name = "{mode}"
            [[benchmark]]
            name = "{mode}-bench"
            kind = "command"
            command = ["{PY}", "bench.py", "{mode}", "{ctl}"]
            timeout = 150
        """)
        )
    db = Database.from_url(pg_database)
    with db.transaction() as session:
        session.add(Project(slug="exo", name="exo", default_branch="main", clone_url=str(target)))
        ci = create_token(session, "ci", ["ci"]).token
        reg = create_token(session, "reg", ["register"]).token
    server = LiveServer(
        pg_database, tmp_path / "api.log", lease_seconds=3, reaper_interval_s=0.5, claim_poll_interval_s=0.1
    ).start()
    try:
        yield Stack(server, db, bearer(ci), reg, sha, ctl, suites, tmp_path)
    finally:
        server.stop()
        db.engine.dispose()


class AgentProcess:
    """`bench-runner register` then `bench-runner agent`, each a real subprocess."""

    def __init__(self, stack: Stack, name: str) -> None:
        self.home = stack.tmp / name
        self.home.mkdir()
        self.config = self.home / "runner.toml"
        self.log_path = self.home / "agent.log"
        self.env = {
            **os.environ,
            "XDG_STATE_HOME": str(self.home / "state"),
            "PYTHONPATH": str(REPO / "runners"),
        }
        reg = subprocess.run(
            [
                str(VENV_BIN / "bench-runner"),
                "register",
                "--server",
                stack.server.url,
                "--registration-token",
                stack.register_token,
                "--name",
                name,
                "--hardware-class",
                "cpu-x86_64",
                "--suites-dir",
                str(stack.suites),
                "--work-dir",
                str(self.home / "work"),
                "--config",
                str(self.config),
            ],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert reg.returncode == 0, reg.stderr
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(VENV_BIN / "bench-runner"),
                    "agent",
                    "--config",
                    str(self.config),
                    "--wait",
                    "2",
                    "--heartbeat",
                    "1",
                    "--grace",
                    "5",
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def spool_files(self) -> list[Path]:
        spool = self.home / "state"
        return [p for p in spool.rglob("*.json") if "rejected" not in p.parts] if spool.exists() else []

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.terminate()
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()
            return None


def trigger(stack: Stack, suite: str) -> int:
    with httpx.Client(base_url=stack.server.url, timeout=30) as http:
        resp = http.post(
            "/api/v1/runs",
            json={"project": "exo", "sha": stack.sha, "ref": "refs/heads/main", "suites": [suite]},
            headers=stack.ci,
        )
        assert resp.status_code == 202, resp.text
        run = wait_for(lambda: http.get(f"/api/v1/runs/{resp.json()['run_id']}").json()["jobs"], 10, "jobs")
        return int(run[0]["id"])


def job_state(stack: Stack, job_id: int) -> dict[str, object]:
    return dict(httpx.get(f"{stack.server.url}/api/v1/jobs/{job_id}", timeout=10).json())


def test_runner_killed_mid_job_is_requeued_and_finished_elsewhere(stack: Stack) -> None:
    a = AgentProcess(stack, "runner-a")
    b = AgentProcess(stack, "runner-b")
    job_id = trigger(stack, "killable")
    a.start()
    try:
        wait_for(lambda: (stack.ctl / "first").exists(), 60, "runner a to start the benchmark")
        assert job_state(stack, job_id)["state"] == "running"
        assert job_state(stack, job_id)["runner"] == "runner-a"
        a.kill()  # the agent and its process group; the benchmark runs in its own session:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int((stack.ctl / "first").read_text()), signal.SIGKILL)

        b.start()
        done = wait_for(
            lambda: (s := job_state(stack, job_id))["state"] in ("succeeded", "failed") and s,
            60,
            "runner b to finish",
        )
        assert (done["state"], done["attempt"], done["runner"]) == ("succeeded", 2, "runner-b")
    finally:
        assert b.stop() in (0, None)
        a.stop()
    with stack.db.read_only() as session:
        batches = session.scalars(select(IngestBatch).where(IngestBatch.job_id == job_id)).all()
        assert [x.idempotency_key.split("/")[-1] for x in batches] == ["attempt-2"]
        values = session.scalars(select(Result.value).where(Result.job_id == job_id)).all()
        assert values == [50.0]
        job = session.get_one(Job, job_id)
        assert job.failure_class is None


def test_api_down_while_the_runner_posts_spool_delivers_once(stack: Stack) -> None:
    agent = AgentProcess(stack, "runner-s")
    job_id = trigger(stack, "slowpost")
    agent.start()
    try:
        wait_for(lambda: (stack.ctl / "finishing").exists(), 60, "the benchmark to reach its end")
        stack.server.stop()  # the API goes away just before the results are posted
        (stack.ctl / "go").write_text("")
        wait_for(
            lambda: "spooled for later" in agent.log(), 90, "the agent to spool its results", interval=0.3
        )
        assert agent.spool_files(), "the batch should be on disk while the API is down"

        stack.server.start()  # same database, same port
        wait_for(lambda: not agent.spool_files(), 60, "the spool to drain", interval=0.3)
        done = wait_for(
            lambda: (s := job_state(stack, job_id))["state"] in ("succeeded", "failed") and s,
            30,
            "the job to close",
        )
        assert (done["state"], done["attempt"]) == ("succeeded", 1)
    finally:
        assert agent.stop() in (0, None)
    with stack.db.read_only() as session:
        batches = session.scalars(select(IngestBatch).where(IngestBatch.job_id == job_id)).all()
        assert len(batches) == 1 and batches[0].n_results == 1
        assert session.scalars(select(Result.value).where(Result.job_id == job_id)).all() == [60.0]
        jobs = session.scalars(select(Job)).all()
        assert [(j.id, j.attempt) for j in jobs] == [(job_id, 1)]  # never run a second time
