"""The embedded demo: SQLite, the API on localhost and sample history loaded through the public API.

No services to install. The sample history is synthetic (seeded noise around fixed levels with a
planted regression and a failure) and says so in its context; it exists to show the store, the
API and the dashboard end to end until runners post real measurements.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from bench_server.app import create_app
from bench_server.auth.service import create_token
from bench_server.catalog.schemas import ProjectIn
from bench_server.catalog.service import create_project
from bench_server.kit.db import Database
from bench_server.kit.errors import Conflict
from bench_server.kit.migrate import upgrade
from bench_server.kit.settings import Settings

PROJECT = "demo-engine"
COMMITS = 30
REGRESSION_AT = 20  # commit index where throughput drops and TTFT rises
OOM_AT = 25  # commit index where the 8192-token workload runs out of memory on the DGX Spark
HARDWARE = {  # class -> (output tok/s at concurrency 8, TTFT ms, all-reduce busbw GB/s at 64 MB)
    "cpu-x86_64": (42.0, 180.0, 0.9),
    "dgx-spark": (610.0, 38.0, 21.0),
    "2x mac-studio-m3-ultra + 1x dgx-spark": (940.0, 55.0, 7.5),
}


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def sha_of(i: int) -> str:
    return hashlib.sha1(f"demo commit {i}".encode()).hexdigest()


def demo_batch(i: int, hw: str, rng: random.Random) -> dict[str, Any]:
    tput, ttft, busbw = HARDWARE[hw]
    if i >= REGRESSION_AT:
        tput, ttft = tput * 0.85, ttft * 1.2
    serving = {"model": "gemma-3-270m", "quant": "Q4_K_M", "isl": 128, "osl": 64, "concurrency": 8}

    def noisy(level: float, rel: float = 0.02) -> float:
        return round(level * (1 + rng.gauss(0, rel)), 4)

    ttfts = [noisy(ttft, 0.08) for _ in range(20)]
    results = [
        {
            "suite": "serving",
            "benchmark": "gemma-270m-128x64-c8",
            "params": serving,
            "metric": "output_throughput",
            "unit": "tok/s",
            "direction": "higher",
            "value": noisy(tput),
        },
        {
            "suite": "serving",
            "benchmark": "gemma-270m-128x64-c8",
            "params": serving,
            "metric": "mean_ttft_ms",
            "unit": "ms",
            "direction": "lower",
            "value": round(sum(ttfts) / len(ttfts), 4),
            "samples": ttfts,
        },
        {
            "suite": "serving",
            "benchmark": "gemma-270m-128x64-c8",
            "params": serving,
            "metric": "mean_tpot_ms",
            "unit": "ms",
            "direction": "lower",
            "value": noisy(1000.0 / tput * 8),
        },
        {
            "suite": "collectives",
            "benchmark": "all_reduce-64M",
            "params": {"op": "all_reduce", "bytes": 64 << 20},
            "metric": "busbw",
            "unit": "GB/s",
            "direction": "higher",
            "value": noisy(busbw, 0.01),
        },
    ]
    failures = []
    if i == OOM_AT and hw == "dgx-spark":
        failures.append(
            {
                "suite": "serving",
                "benchmark": "gemma-270m-8192x1024-c64",
                "params": {**serving, "isl": 8192, "osl": 1024, "concurrency": 64},
                "failure_class": "oom",
                "message": "engine killed by the OOM killer (exit 137)",
            }
        )
    return {
        "idempotency_key": f"demo/{hw}/{i}",
        "project": PROJECT,
        "commit": {
            "sha": sha_of(i),
            "branch": "main",
            "parents": [sha_of(i - 1)] if i else [],
            "author": "demo",
            "message": f"demo commit {i}",
            "committed_at": f"2026-10-{1 + i // 2:02d}T{(i % 2) * 12:02d}:00:00Z",
        },
        "machine": {
            "hardware_class": hw,
            "fingerprint": {"demo": True, "class": hw},
            "hostname": f"demo-{i % 3}",
        },
        "context": {"synthetic": True, "source": "bench-server demo"},
        "results": results,
        "failures": failures,
    }


def run_demo(
    host: str = "127.0.0.1", port: int = 8000, workdir: str = ".demo", keep_running: bool = True
) -> int:
    root = Path(workdir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{root / 'bench.db'}"
    say(f"== database: {url} (SQLite, embedded)")
    upgrade(url)
    db = Database.from_url(url)
    with db.transaction() as session:
        with contextlib.suppress(Conflict):  # a demo loaded before: the project is there
            create_project(
                session, ProjectIn(slug=PROJECT, name="Demo inference engine", default_branch="main")
            )
        runner_token = create_token(session, "demo-runner", ["runner"]).token

    settings = Settings(database_url=url, broker_url="memory://")
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, db), host=host, port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://{host}:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            say(f"the API did not start on {base} (is the port taken? try --port)")
            return 1
        time.sleep(0.05)
    say(f"== API up at {base}")

    rng = random.Random(2026)
    headers = {"Authorization": f"Bearer {runner_token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        stored = duplicates = 0
        for i in range(COMMITS):
            for hw in HARDWARE:
                r = client.post("/api/v1/results", json=demo_batch(i, hw, rng))
                if r.status_code not in (200, 201):
                    say(f"ingest failed: {r.status_code} {r.text}")
                    return 1
                stored += r.status_code == 201
                duplicates += r.status_code == 200
            if (i + 1) % 10 == 0:
                say(f"   posted {i + 1}/{COMMITS} commits x {len(HARDWARE)} hardware classes")
        say(
            f"== sample history posted through POST /api/v1/results: "
            f"{stored} new batches, {duplicates} already there"
        )
        series = client.get(
            "/api/v1/series",
            params={
                "project": PROJECT,
                "benchmark": "gemma-270m-128x64-c8",
                "metric": "output_throughput",
                "hardware_class": "dgx-spark",
            },
        ).json()
        compare = client.get(f"/api/v1/commits/{sha_of(REGRESSION_AT)}", params={"project": PROJECT}).json()
    drop = [
        r
        for r in compare["results"]
        if r["metric"] == "output_throughput" and r["hardware_class"] == "dgx-spark"
    ]
    say(f"   series output_throughput on dgx-spark: {series['length']} commits")
    say(f"   commit {REGRESSION_AT} vs its parent on dgx-spark: output_throughput {drop[0]['change']:+.1%}")
    say("")
    say(f"   dashboard:  {base}/")
    say(f"   API docs:   {base}/docs")
    say(
        f"   a series:   {base}/api/v1/series?project={PROJECT}&benchmark=gemma-270m-128x64-c8"
        "&metric=output_throughput&hardware_class=dgx-spark"
    )
    say(f"   CSV export: {base}/api/v1/results?project={PROJECT}&format=csv")
    if not keep_running:
        server.should_exit = True
        thread.join(timeout=10)
        return 0
    say("== serving; Ctrl-C stops")
    try:
        while thread.is_alive():
            thread.join(timeout=0.5)
    except KeyboardInterrupt:
        server.should_exit = True
        thread.join(timeout=10)
    return 0
