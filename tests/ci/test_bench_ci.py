"""bench_ci end to end: a live API process, a simulated runner, and the CLI run the way a GitHub
Actions step runs it (GITHUB_* environment, step summary and outputs files)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench_server.auth.service import create_token
from bench_server.kit.db import Database
from bench_server.models import Project
from tests.bench_server.jobs.helpers import REPO, LiveServer, bearer

CI_DIR = REPO / "ci"
BASE, HEAD = "a1" * 20, "b2" * 20
VALUES = {BASE: 100.0, HEAD: 80.0}  # tokens/s: higher is better, so HEAD regressed by 20 %


class FakeRunner(threading.Thread):
    """Claims jobs over HTTP and posts a result whose value depends on the commit."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(base_url=url, headers=bearer(token), timeout=30)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            resp = self.http.post("/api/v1/jobs/claim?wait=1")
            if resp.status_code != 200:
                continue
            job = resp.json()
            sha = job["commit"]["sha"]
            self.http.post(f"/api/v1/jobs/{job['id']}/start")
            body = {
                "idempotency_key": f"fake/job-{job['id']}/attempt-{job['attempt']}",
                "project": job["project"]["slug"],
                "commit": {"sha": sha, "branch": "main", **({"parents": [BASE]} if sha == HEAD else {})},
                "machine": {"hardware_class": job["hardware_class"], "fingerprint": {"cpu": "test"}},
                "job_id": job["id"],
                "results": [
                    {
                        "suite": job["suite"],
                        "benchmark": "gemma-270m",
                        "params": {"isl": 128},
                        "metric": "output_tok_s",
                        "unit": "tok/s",
                        "direction": "higher",
                        "value": VALUES[sha],
                    }
                ],
            }
            assert self.http.post("/api/v1/results", json=body).status_code == 201
            self.http.post(f"/api/v1/jobs/{job['id']}/finish", json={"state": "succeeded"})
        self.http.close()


@pytest.fixture
def stack(sqlite_database: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    db = Database.from_url(sqlite_database)
    with db.transaction() as session:
        session.add(Project(slug="exo", name="exo", default_branch="main", github_repo="exo-explore/exo"))
        ci = create_token(session, "ci", ["ci"]).token
        reg = create_token(session, "reg", ["register"]).token
    db.engine.dispose()
    server = LiveServer(sqlite_database, tmp_path / "api.log", claim_poll_interval_s=0.1).start()
    resp = httpx.post(
        f"{server.url}/api/v1/runners/register",
        json={"name": "cpu-1", "hardware_class": "cpu-x86_64"},
        headers=bearer(reg),
    )
    runner = FakeRunner(server.url, resp.json()["token"])
    runner.start()
    try:
        yield server.url, ci
    finally:
        runner.stop.set()
        runner.join(10)
        server.stop()


def bench_ci(url: str, token: str, tmp_path: Path, sha: str, *args: str) -> tuple[int, str, dict[str, str]]:
    outputs, summary = tmp_path / f"out-{sha[:4]}", tmp_path / f"summary-{sha[:4]}.md"
    env = {
        **os.environ,
        "PYTHONPATH": str(CI_DIR),
        "BENCH_SERVER_URL": url,
        "BENCH_CI_TOKEN": token,
        "BENCH_PROJECT": "exo",
        "GITHUB_SHA": sha,
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_REPOSITORY": "exo-explore/exo",
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_OUTPUT": str(outputs),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "bench_ci", *args], env=env, capture_output=True, text=True, timeout=60
    )
    parsed = {}
    if outputs.exists():
        for line in outputs.read_text().splitlines():
            key, _, value = line.partition("=")
            parsed[key] = value
    return proc.returncode, summary.read_text() if summary.exists() else proc.stderr, parsed


def run_commit(url: str, token: str, tmp_path: Path, sha: str) -> dict[str, str]:
    code, _, out = bench_ci(url, token, tmp_path, sha, "trigger")
    assert code == 0 and out["run_id"]
    code, err, out = bench_ci(
        url, token, tmp_path, sha, "wait", "--run-id", out["run_id"], "--interval", "0.3", "--timeout", "30"
    )
    assert code == 0, err
    assert out["state"] == "succeeded"
    return out


def test_trigger_wait_report_flags_the_regression(stack: tuple[str, str], tmp_path: Path) -> None:
    url, token = stack
    run_commit(url, token, tmp_path, BASE)
    code, summary, out = bench_ci(url, token, tmp_path, BASE, "report")
    assert code == 0 and out["regressions"] == "0" and out["results"] == "1"

    run_commit(url, token, tmp_path, HEAD)
    code, summary, out = bench_ci(url, token, tmp_path, HEAD, "report", "--threshold", "0.05")
    assert code == 1
    assert (out["regressions"], out["failures"], out["results"]) == ("1", "0", "1")
    row = next(line for line in summary.splitlines() if "output_tok_s" in line)
    assert "| 80 tok/s | 100 | -20.0% | :red_circle: regression |" in row
    assert f"`{HEAD[:12]}`" in summary and f"Baseline: `{BASE[:12]}`" in summary

    # configurable: a larger threshold, or not failing on regressions
    assert bench_ci(url, token, tmp_path, HEAD, "report", "--threshold", "0.25")[0] == 0
    assert bench_ci(url, token, tmp_path, HEAD, "report", "--fail-on-regression", "false")[0] == 0


def test_errors_are_reported_not_raised(stack: tuple[str, str], tmp_path: Path) -> None:
    url, token = stack
    code, err, _ = bench_ci(url, "bch_wrong", tmp_path, BASE, "trigger")
    assert code == 2 and "401" in err
    code, summary, out = bench_ci(url, token, tmp_path, "c3" * 20, "report", "--require-results", "true")
    assert code == 1 and "No results" in summary and out["results"] == "0"


def test_report_formats_failures_and_failed_jobs() -> None:
    from bench_ci.report import judge, markdown

    commit: dict[str, Any] = {
        "baseline": None,
        "results": [],
        "failures": [
            {"suite": "serving", "failure_class": "oom", "message": "killed | oom", "hardware_class_id": 1}
        ],
    }
    jobs = [
        {
            "id": 7,
            "suite": "serving",
            "hardware_class": "h100-sxm",
            "state": "failed",
            "failure_class": "runner_lost",
        }
    ]
    verdict = judge(commit, 0.05, jobs)
    text = markdown("exo", HEAD, commit, verdict, 0.05)
    assert (
        ":x: failure: oom: killed \\| oom" in text
        and "job 7 (serving on h100-sxm): **failed** runner_lost" in text
    )
    assert "2 failures" in text
