"""Claims racing on a live API process over PostgreSQL, and the Celery path with a real Redis
broker and a real worker (with its embedded beat) in subprocesses."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bench_server.auth.service import create_token
from bench_server.kit.db import Database
from bench_server.models import Job, Project
from tests.bench_server.jobs.helpers import (
    REPO,
    VENV_BIN,
    LiveServer,
    Recorder,
    bearer,
    empty_redis,
    stop_process,
    wait_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
REDIS_URL = "redis://127.0.0.1:6379/14"


def seed(url: str) -> tuple[Database, dict[str, str], str]:
    db = Database.from_url(url)
    with db.transaction() as session:
        session.add(Project(slug="exo", name="exo", default_branch="main", github_repo="exo-explore/exo"))
        ci = create_token(session, "ci", ["ci"]).token
        reg = create_token(session, "reg", ["register"]).token
    return db, bearer(ci), reg


def register(http: httpx.Client, reg: str, name: str) -> dict[str, str]:
    resp = http.post(
        "/api/v1/runners/register", json={"name": name, "hardware_class": "cpu-x86_64"}, headers=bearer(reg)
    )
    assert resp.status_code == 201, resp.text
    return bearer(resp.json()["token"])


@pytest.fixture
def live(pg_database: str, tmp_path: Path) -> Iterator[tuple[LiveServer, Database, dict[str, str], str]]:
    db, ci, reg = seed(pg_database)
    server = LiveServer(pg_database, tmp_path / "api.log", claim_poll_interval_s=0.05).start()
    try:
        yield server, db, ci, reg
    finally:
        server.stop()
        db.engine.dispose()


def test_runners_racing_for_one_job_exactly_one_wins(
    live: tuple[LiveServer, Database, dict[str, str], str],
) -> None:
    server, db, ci, reg = live
    with httpx.Client(base_url=server.url, timeout=30) as http:
        runners = [register(http, reg, f"racer-{i}") for i in range(8)]
        assert (
            http.post("/api/v1/runs", json={"project": "exo", "sha": "a" * 40}, headers=ci).status_code == 202
        )
        wait_for(lambda: http.get("/api/v1/jobs?state=queued").json()["items"], 10, "the fan-out")

    barrier = threading.Barrier(len(runners))
    answers: list[tuple[int, Any]] = []
    lock = threading.Lock()

    def race(headers: dict[str, str]) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            barrier.wait()
            resp = c.post("/api/v1/jobs/claim?wait=1", headers=headers)
            with lock:
                answers.append((resp.status_code, resp.json() if resp.status_code == 200 else None))

    threads = [threading.Thread(target=race, args=(h,)) for h in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(code for code, _ in answers) == [200] + [204] * 7
    with db.read_only() as session:
        (job,) = session.scalars(select(Job)).all()
        assert (job.state, job.attempt) == ("claimed", 1)


def test_many_runners_many_jobs_no_job_twice(live: tuple[LiveServer, Database, dict[str, str], str]) -> None:
    server, db, ci, reg = live
    n_jobs = 60
    with httpx.Client(base_url=server.url, timeout=30) as http:
        runners = [register(http, reg, f"worker-{i}") for i in range(6)]
        for i in range(n_jobs):
            resp = http.post("/api/v1/runs", json={"project": "exo", "sha": f"{i:040x}"}, headers=ci)
            assert resp.status_code == 202

    claimed: list[int] = []
    lock = threading.Lock()

    def work(headers: dict[str, str]) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            while True:
                resp = c.post("/api/v1/jobs/claim?wait=1", headers=headers)
                if resp.status_code == 204:
                    return
                job_id = resp.json()["id"]
                with lock:
                    claimed.append(job_id)
                fin = c.post(f"/api/v1/jobs/{job_id}/finish", json={"state": "succeeded"}, headers=headers)
                assert fin.status_code == 200, fin.text

    threads = [threading.Thread(target=work, args=(h,)) for h in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(claimed) == n_jobs and len(set(claimed)) == n_jobs
    with db.read_only() as session:
        jobs = session.scalars(select(Job)).all()
        assert {(j.state, j.attempt) for j in jobs} == {("succeeded", 1)} and len(jobs) == n_jobs


@pytest.fixture
def broker() -> Iterator[str]:
    yield from empty_redis(REDIS_URL)


def test_celery_worker_fans_out_reaps_and_posts_statuses(
    pg_database: str, tmp_path: Path, broker: str
) -> None:
    """API and worker (with beat) in their own processes, talking through Redis."""
    db, ci, reg = seed(pg_database)
    recorder = Recorder(script=[502])  # the first status post fails once and is retried by Celery
    settings: dict[str, Any] = {
        "broker_url": broker,
        "github_api_url": recorder.url,
        "github_token": "ghs_test",
        "task_retry_base_s": 0.2,
        "lease_seconds": 2,
        "reaper_interval_s": 1,
        "claim_poll_interval_s": 0.1,
    }
    server = LiveServer(pg_database, tmp_path / "api.log", **settings).start()
    worker_log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [
            str(VENV_BIN / "celery"),
            "-A",
            "bench_server.worker",
            "worker",
            "-B",
            "-s",
            str(tmp_path / "beat-schedule"),
            "-Q",
            "dispatch,maintenance,github",
            "--pool",
            "threads",
            "-c",
            "2",
            "--loglevel",
            "INFO",
            "--without-mingle",
            "--without-gossip",
        ],
        env=server.env,
        cwd=REPO,
        stdout=worker_log,
        stderr=subprocess.STDOUT,
    )
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            a, b = register(http, reg, "cpu-a"), register(http, reg, "cpu-b")
            run = http.post("/api/v1/runs", json={"project": "exo", "sha": "b" * 40}, headers=ci).json()
            # the fan-out happens in the worker
            jobs = wait_for(
                lambda: http.get(f"/api/v1/runs/{run['run_id']}").json()["jobs"], 30, "the worker's fan-out"
            )
            job_id = jobs[0]["id"]

            # runner a claims, starts (a status through the worker, retried after a 502) and goes silent
            assert http.post("/api/v1/jobs/claim?wait=5", headers=a).json()["id"] == job_id
            assert http.post(f"/api/v1/jobs/{job_id}/start", headers=a).status_code == 200
            wait_for(lambda: recorder.statuses(201), 20, "the pending status after a retry")
            assert [x.answered for x in recorder.statuses()][:2] == [502, 201]
            assert recorder.statuses(201)[0].body["state"] == "pending"

            # the beat's reaper requeues it once the 2 s lease expires; runner b finishes it
            wait_for(
                lambda: http.get(f"/api/v1/jobs/{job_id}").json()["state"] == "queued",
                20,
                "the reaper's requeue",
            )
            assert http.post(f"/api/v1/jobs/{job_id}/lease", headers=a).json()["error"] == "lease_lost"
            again = http.post("/api/v1/jobs/claim?wait=5", headers=b).json()
            assert (again["id"], again["attempt"]) == (job_id, 2)
            http.post(f"/api/v1/jobs/{job_id}/finish", json={"state": "succeeded"}, headers=b)
            wait_for(
                lambda: any(x.body["state"] == "success" for x in recorder.statuses(201)),
                20,
                "the success status",
            )
            assert {x.path for x in recorder.statuses()} == {f"/repos/exo-explore/exo/statuses/{'b' * 40}"}
    finally:
        stop_process(worker)
        worker_log.close()
        server.stop()
        recorder.close()
        db.engine.dispose()
    log = (tmp_path / "worker.log").read_text()
    assert "runs.fan_out" in log and "jobs.reap_expired" in log and "github.post_status" in log
