"""Histories for the analysis tests: commits posted through POST /api/v1/results, in order."""

from __future__ import annotations

import hashlib
import random
from typing import Any

from bench_server.kit.embedded import local_worker
from tests.bench_server.conftest import Api, batch, result

FINGERPRINT = {"cpu": "EPYC", "cores": 2}


def sha(i: int, branch: str = "main") -> str:
    return hashlib.sha1(f"{branch}/{i}".encode()).hexdigest()


def noisy(n: int, level: float, cv: float = 0.01, seed: int = 0) -> list[float]:
    rng = random.Random(f"{seed}/{level}/{n}")
    return [level * (1 + cv * rng.gauss(0, 1)) for _ in range(n)]


def drain() -> None:
    assert local_worker.drain(120), "the embedded worker did not finish"


def post_commit(
    api: Api,
    i: int,
    samples: list[float] | None = None,
    *,
    hardware_class: str = "cpu-x86_64",
    fingerprint: dict[str, Any] | None = None,
    benchmark: str = "gemma-270m-128x64",
    metric: str = "output_throughput",
    unit: str = "tok/s",
    direction: str = "higher",
    failures: list[dict[str, Any]] | None = None,
    commit: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
) -> Any:
    """One batch of main's commit i (its parent is commit i - 1) on one machine."""
    commit = commit or {"sha": sha(i), "branch": "main", "parents": [sha(i - 1)] if i else []}
    body = batch(
        key=f"{commit['sha']}/{hardware_class}/{benchmark}/{metric}/{len(failures or [])}",
        sha=commit["sha"],
        commit=commit,
        machine={
            "hardware_class": hardware_class,
            "fingerprint": fingerprint or FINGERPRINT,
            "hostname": "t",
        },
        results=[
            result(metric, v, benchmark=benchmark, unit=unit, direction=direction) for v in samples or []
        ],
        failures=failures or [],
        context=context or {},
    )
    r = api.ingest(body)
    assert r.status_code == 201, r.text
    return r.json()


def post_series(api: Api, values: list[float], first: int = 0, **over: Any) -> None:
    """Main's commits first, first + 1, ... with one value each; waits for their analysis."""
    for n, value in enumerate(values):
        post_commit(api, first + n, [value], **over)
    drain()


def failure(benchmark: str = "gemma-270m-128x64") -> dict[str, Any]:
    """A failure of the benchmark `result()` measures (same suite, name and parameters)."""
    measured = result(benchmark=benchmark)
    return {
        "suite": measured["suite"],
        "benchmark": benchmark,
        "params": measured["params"],
        "failure_class": "oom",
        "message": "killed (OOM)",
    }


def items(api: Api, path: str, **params: Any) -> list[dict[str, Any]]:
    r = api.client.get(f"/api/v1/{path}", params={"project": "exo", **params})
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["items"]
    return found
