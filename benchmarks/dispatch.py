"""Job dispatch under load: N runner processes long-polling a live API on PostgreSQL.

Phase 1 (latency): jobs are triggered through `POST /api/v1/runs` at a steady rate (below the
system's capacity) and the claim latency is measured per job as `claimed_at - created_at`, both
stamped by the server (enqueue = the fan-out's insert, claim = the winning UPDATE).
Phase 2 (throughput): the same number of jobs is inserted in one transaction while the runners
wait, and claim+finish per second is measured until the queue is empty.
Every runner records what it claimed: a job claimed twice, or one never finished, is counted.

    .venv/bin/python benchmarks/dispatch.py                     # 1,000 jobs, 20 runners
    .venv/bin/python benchmarks/dispatch.py --jobs 200 --runners 5

Prints a table, then ONE JSON line:
{"claim_p50_ms", "claim_p95_ms", "jobs_per_s", "double_claims", "lost"}.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import func, insert, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_server.auth.service import create_token  # noqa: E402
from bench_server.kit.db import Database  # noqa: E402
from bench_server.kit.migrate import upgrade  # noqa: E402
from bench_server.models import Commit, HardwareClass, Job, Project  # noqa: E402
from bench_server.models.base import utcnow  # noqa: E402


def runner_loop(url: str, token: str, stop: Any, out: Any) -> None:
    claimed: list[int] = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        while not stop.is_set():
            try:
                resp = http.post("/api/v1/jobs/claim", params={"wait": 2})
            except httpx.HTTPError:
                continue
            if resp.status_code != 200:
                continue
            job_id = resp.json()["id"]
            claimed.append(job_id)
            http.post(f"/api/v1/jobs/{job_id}/finish", json={"state": "succeeded"})
    out.put(claimed)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--runners", type=int, default=20)
    parser.add_argument("--rate", type=float, default=100.0, help="phase 1 triggers per second")
    parser.add_argument(
        "--pg", default=os.environ.get("BENCH_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--poll", type=float, default=0.5, help="server claim_poll_interval_s")
    args = parser.parse_args()

    dbname = f"bench_dispatch_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.pg, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')  # type: ignore[arg-type]
    url = args.pg.rsplit("/", 1)[0] + f"/{dbname}"
    server: subprocess.Popen[bytes] | None = None
    procs: list[Any] = []
    db = None
    try:
        upgrade(url)
        db = Database.from_url(url)
        with db.transaction() as session:
            session.add(Project(slug="exo", name="exo", default_branch="main"))
            ci = create_token(session, "ci", ["ci"]).token
            reg = create_token(session, "reg", ["register"]).token
        port = 18000 + os.getpid() % 1000
        base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "BENCH_DATABASE_URL": url,
            "BENCH_ENVIRONMENT": "test",
            "BENCH_CLAIM_POLL_INTERVAL_S": str(args.poll),
            "PYTHONPATH": str(ROOT),
        }
        server = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "uvicorn"),
                "bench_server.app:create_app",
                "--factory",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env=env,
            cwd=ROOT,
        )
        for _ in range(100):
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        tokens = []
        with httpx.Client(base_url=base, timeout=30) as http:
            for i in range(args.runners):
                resp = http.post(
                    "/api/v1/runners/register",
                    json={"name": f"sim-{i}", "hardware_class": "cpu-x86_64"},
                    headers={"Authorization": f"Bearer {reg}"},
                )
                resp.raise_for_status()
                tokens.append(resp.json()["token"])

        ctx = mp.get_context("fork")
        stop, out = ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=runner_loop, args=(base, t, stop, out)) for t in tokens]
        for p in procs:
            p.start()
        time.sleep(1.0)

        # Phase 1: paced triggers through the API.
        t0 = time.monotonic()
        with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {ci}"}) as http:
            for i in range(args.jobs):
                target = t0 + i / args.rate
                delay = target - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                http.post(
                    "/api/v1/runs", json={"project": "exo", "sha": f"{i:040x}", "ref": "refs/heads/main"}
                ).raise_for_status()

        def finished() -> int:
            assert db is not None
            with db.read_only() as session:
                return int(
                    session.scalar(select(func.count()).select_from(Job).where(Job.state == "succeeded")) or 0
                )

        deadline = time.monotonic() + 120
        while finished() < args.jobs and time.monotonic() < deadline:
            time.sleep(0.2)
        with db.read_only() as session:
            rows = session.execute(
                select(Job.created_at, Job.claimed_at).where(Job.claimed_at.is_not(None))
            ).all()
        latencies = [(c - e).total_seconds() * 1000 for e, c in rows]

        # Phase 2: a burst inserted at once; claim+finish throughput until the queue is empty.
        with db.transaction() as session:
            project_id = session.scalars(select(Project.id)).one()
            hw_id = session.scalars(select(HardwareClass.id).where(HardwareClass.name == "cpu-x86_64")).one()
            now = utcnow()
            session.execute(
                insert(Commit),
                [
                    {
                        "project_id": project_id,
                        "sha": f"f{i:039x}",
                        "branch": "main",
                        "parents": [],
                        "order_key": 10**6 + i,
                        "created_at": now,
                    }
                    for i in range(args.jobs)
                ],
            )
            commit_ids = session.scalars(
                select(Commit.id).where(Commit.order_key >= 10**6).order_by(Commit.id)
            ).all()
            session.execute(
                insert(Job),
                [
                    {
                        "project_id": project_id,
                        "commit_id": cid,
                        "branch": "main",
                        "suite": "default",
                        "hardware_class_id": hw_id,
                        "state": "queued",
                        "priority": 10,
                        "attempt": 0,
                        "max_attempts": 3,
                        "forced": False,
                        "created_at": now,
                    }
                    for cid in commit_ids
                ],
            )
        burst_start = time.monotonic()
        total = 2 * args.jobs
        deadline = time.monotonic() + 300
        while finished() < total and time.monotonic() < deadline:
            time.sleep(0.05)
        burst_s = time.monotonic() - burst_start

        stop.set()
        claimed: list[int] = []
        for _ in procs:
            claimed.extend(out.get(timeout=30))
        for p in procs:
            p.join(10)
        with db.read_only() as session:
            states = Counter(s for (s,) in session.execute(select(Job.state)))
            reclaimed = int(session.scalar(select(func.count()).select_from(Job).where(Job.attempt > 1)) or 0)
        counts = Counter(claimed)
        double_claims = sum(n - 1 for n in counts.values() if n > 1) + reclaimed
        lost = total - states.get("succeeded", 0)
        jobs_per_s = args.jobs / burst_s if burst_s > 0 else float("nan")
        p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)

        print(f"dispatch benchmark: {args.runners} runner processes, PostgreSQL, poll {args.poll} s")
        print(f"{'phase':<34}{'jobs':>8}{'value':>14}")
        print(f"{'latency: triggers at ' + format(args.rate, 'g') + '/s':<34}{len(latencies):>8}")
        print(f"{'  claim latency p50 (ms)':<34}{'':>8}{p50:>14.1f}")
        print(f"{'  claim latency p95 (ms)':<34}{'':>8}{p95:>14.1f}")
        print(f"{'  claim latency max (ms)':<34}{'':>8}{max(latencies, default=float('nan')):>14.1f}")
        print(
            f"{'  mean (ms)':<34}{'':>8}{statistics.fmean(latencies) if latencies else float('nan'):>14.1f}"
        )
        print(
            f"{'throughput: burst of ' + str(args.jobs):<34}{args.jobs:>8}{jobs_per_s:>14.1f}  claim+finish/s"
        )
        print(f"{'claims recorded by runners':<34}{len(claimed):>8}")
        print(f"{'double claims':<34}{double_claims:>8}")
        print(f"{'lost (not succeeded)':<34}{lost:>8}   states: {dict(states)}")
        print(
            json.dumps(
                {
                    "claim_p50_ms": round(p50, 1),
                    "claim_p95_ms": round(p95, 1),
                    "jobs_per_s": round(jobs_per_s, 1),
                    "double_claims": double_claims,
                    "lost": lost,
                }
            )
        )
        return 0 if double_claims == 0 and lost == 0 else 1
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        if server is not None:
            server.terminate()
            server.wait(15)
        if db is not None:
            db.engine.dispose()
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
