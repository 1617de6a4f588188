"""A small, complete history for the website's tests: serving sweeps and collectives on machines
and a cluster, a planted regression with its alert and incident, a failure, an annotation,
runners and jobs, and markup planted in every user-supplied field.

Results go through the public API (so the series catalog is kept by ingest, as in production).
What the API refuses by design (a hardware class or runner named with markup, alerts before the
analysis domain writes them, jobs without a dispatcher) is written with the ORM.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import delete

from bench_server.auth.service import create_token
from bench_server.kit.embedded import local_worker
from bench_server.models import Alert, AnalysisSeries, Annotation, HardwareClass, Incident, Job, Runner
from bench_server.models.base import utcnow
from tests.bench_server.conftest import Api

PROJECT = "exo"
COMMITS = 12
REGRESSION_AT = 9  # output throughput drops 20% on dgx-spark from this commit on
FAILURE_AT = 10  # the large workload runs out of memory on dgx-spark
ANNOTATION_AT = 5
ENGINE_FAILURE_AT = 11  # the cluster's engine does not start: a suite-wide failure, no serving results
CONCURRENCY = (1, 4, 16)
SIZES = (1024, 65536, 1 << 20, 16 << 20)
CLUSTER = "1x dgx-spark + 2x mac-studio-m3-ultra"  # the canonical name of the composition
CLUSTER_ALIAS = "2x mac-studio-m3-ultra + 1x dgx-spark"  # how a runner may spell it
HARDWARE = ("cpu-x86_64", "dgx-spark", CLUSTER)
# Markup planted in every field a user (an ingest token, a runner, a commit author) controls.
EVIL_MESSAGE = "<script>alert('msg')</script><img src=x onerror=alert('img')> javascript:alert(1)"
EVIL_AUTHOR = "<b onmouseover=alert('author')>mallory</b>"
EVIL_BRANCH = "<i>feature</i><script>alert('branch')</script>"
EVIL_BENCHMARK = "<script>alert('bench')</script>"
EVIL_METRIC = "<img src=x onerror=alert('metric')>"
EVIL_HARDWARE = "evil<script>alert('hw')</script>"
EVIL_RUNNER = "<script>alert('runner')</script>"
EVIL_LOG = "Traceback\n<script>alert('log')</script>\nRuntimeError: CUDA out of memory"
EVIL_STRINGS = (
    EVIL_MESSAGE,
    EVIL_AUTHOR,
    EVIL_BRANCH,
    EVIL_BENCHMARK,
    EVIL_METRIC,
    EVIL_HARDWARE,
    EVIL_RUNNER,
)


def sha(i: int) -> str:
    return hashlib.sha1(f"seed commit {i}".encode()).hexdigest()


@dataclass
class Seeded:
    api: Api
    serving_bench_ids: dict[int, int]  # concurrency -> benchmark id
    evil_bench_id: int
    regression_alert_id: int
    failure_alert_id: int


def serving_results(i: int, hw: str, rng: random.Random) -> list[dict[str, Any]]:
    base = {"cpu-x86_64": 40.0, "dgx-spark": 600.0, CLUSTER: 900.0, EVIL_HARDWARE: 10.0}[hw]
    if hw == "dgx-spark" and i >= REGRESSION_AT:
        base *= 0.8
    out = []
    for c in CONCURRENCY:
        params = {"model": "gemma-3-270m", "isl": 128, "osl": 64, "concurrency": c}
        tput = base * c**0.6 * (1 + rng.gauss(0, 0.01))
        tpot = 1000.0 * c / tput * 10
        ttfts = [30.0 * c**0.3 * (1 + rng.gauss(0, 0.05)) for _ in range(8)]

        def r(
            metric: str,
            value: float,
            unit: str,
            direction: str,
            params: dict[str, Any] = params,
            **extra: Any,
        ) -> dict[str, Any]:
            return {
                "suite": "serving",
                "benchmark": "chat",
                "params": params,
                "metric": metric,
                "unit": unit,
                "direction": direction,
                "value": round(value, 4),
                **extra,
            }

        out += [
            r("output_throughput", tput, "tok/s", "higher"),
            r("median_ttft_ms", sorted(ttfts)[4], "ms", "lower", samples=[round(t, 4) for t in ttfts]),
            r("p99_ttft_ms", max(ttfts), "ms", "lower"),
            r("median_tpot_ms", tpot, "ms", "lower"),
            r("request_goodput", tput / 64, "req/s", "higher"),
        ]
    return out


def collectives_results(i: int, hw: str, rng: random.Random) -> list[dict[str, Any]]:
    peak = {"cpu-x86_64": 1.0, "dgx-spark": 20.0, CLUSTER: 7.0, EVIL_HARDWARE: 0.5}[hw]
    params = {"collective": "all_reduce", "nranks": 2, "dtype": "float", "backend": "gloo"}
    out = []
    busbws = []
    for size in SIZES:
        busbw = peak * size / (size + 262144) * (1 + rng.gauss(0, 0.01))
        busbws.append(busbw)
        for metric, value in (("busbw", busbw), ("algbw", busbw)):
            out.append(
                {
                    "suite": "collectives",
                    "benchmark": "all_reduce",
                    "params": {**params, "size_bytes": size},
                    "metric": metric,
                    "unit": "GB/s",
                    "direction": "higher",
                    "value": round(value, 5),
                }
            )
    out.append(
        {
            "suite": "collectives",
            "benchmark": "all_reduce",
            "params": {**params, "min_bytes": SIZES[0], "max_bytes": SIZES[-1]},
            "metric": "avg_busbw",
            "unit": "GB/s",
            "direction": "higher",
            "value": round(sum(busbws) / len(busbws), 5),
            "samples": [round(b, 5) for b in busbws],
        }
    )
    return out


def seed(api: Api) -> Seeded:
    rng = random.Random(10)
    with api.db.transaction() as session:
        session.add(HardwareClass(name=EVIL_HARDWARE, kind="machine", accelerators=1, members=[]))
    for i in range(1, COMMITS + 1):
        commit = {
            "sha": sha(i),
            "branch": "main",
            "parents": [sha(i - 1)] if i > 1 else [],
            "author": EVIL_AUTHOR if i == 7 else "alice",
            "message": (EVIL_MESSAGE if i == 7 else f"commit {i}: tune the scheduler") + "\n\nbody",
            "committed_at": (datetime(2026, 10, 1, tzinfo=UTC) + timedelta(hours=6 * i)).isoformat(),
        }
        for hw in (*HARDWARE, EVIL_HARDWARE):
            engine_failed = i == ENGINE_FAILURE_AT and hw == CLUSTER
            serving = [] if engine_failed else serving_results(i, hw, rng)
            results = serving + collectives_results(i, hw, rng)
            if hw == "cpu-x86_64":
                results.append(
                    {
                        "suite": "serving",
                        "benchmark": EVIL_BENCHMARK,
                        "params": {"note": "<b>x</b>"},
                        "metric": EVIL_METRIC,
                        "unit": "<u>u</u>",
                        "direction": "higher",
                        "value": 1.0 + i,
                    }
                )
            failures = []
            if i == FAILURE_AT and hw == "dgx-spark":
                failures.append(
                    {
                        "suite": "serving",
                        "benchmark": "chat",
                        "params": {"model": "gemma-3-270m", "isl": 8192, "osl": 1024, "concurrency": 64},
                        "failure_class": "oom",
                        "message": "engine killed by the OOM killer (exit 137)",
                        "log_excerpt": EVIL_LOG,
                    }
                )
            if engine_failed:
                failures.append(
                    {
                        "suite": "serving",
                        "failure_class": "engine_start",
                        "message": "the engine exited before it answered /health (exit 1)",
                        "log_excerpt": EVIL_LOG,
                    }
                )
            body = {
                "idempotency_key": f"seed/{quote(hw)}/{i}",
                "project": PROJECT,
                "commit": commit,
                "machine": {
                    "hardware_class": CLUSTER_ALIAS if hw == CLUSTER else hw,
                    "fingerprint": {"class": hw, "driver": "550.54" if i < ANNOTATION_AT else "555.42"},
                    "hostname": f"host-{i % 2}",
                },
                "results": results,
                "failures": failures,
            }
            r = api.ingest(body)
            assert r.status_code == 201, r.text
    # A commit on a branch whose name is markup.
    side = {"sha": sha(100), "branch": EVIL_BRANCH, "parents": [sha(4)], "message": "side branch"}
    body = {
        "idempotency_key": "seed/side",
        "project": PROJECT,
        "commit": side,
        "machine": {"hardware_class": "cpu-x86_64"},
        "results": serving_results(4, "cpu-x86_64", rng)[:2],
    }
    assert api.ingest(body).status_code == 201

    costs = api.client.put(
        "/api/v1/hardware/dgx-spark/costs", json={"power_w": 240.0, "price_per_hour": 3.0}, headers=api.admin
    )
    assert costs.status_code == 200, costs.text
    register = api.client.post(
        "/api/v1/runners/register",
        json={"name": "runner-a", "hardware_class": "cpu-x86_64", "fingerprint": {"cpu": "EPYC <i>7763</i>"}},
        headers={"Authorization": f"Bearer {_register_token(api)}"},
    )
    assert register.status_code == 201, register.text

    catalog = api.client.get("/api/v1/benchmarks", params={"limit": 1000}).json()["items"]
    serving_ids = {
        b["params"]["concurrency"]: b["id"]
        for b in catalog
        if b["name"] == "chat" and b["params"].get("isl") == 128
    }
    evil_bench = next(b["id"] for b in catalog if b["name"] == EVIL_BENCHMARK)
    ids = _ids(api)
    # The pages are checked against planted alerts: let analysis finish with the ingests above,
    # then replace what it found with the known set.
    assert local_worker.drain(), "analysis did not settle"
    with api.db.transaction() as session:
        session.execute(delete(Alert))
        session.execute(delete(Incident))
        session.execute(delete(Annotation))
        series = AnalysisSeries(
            project_id=ids["project"],
            kind="metric",
            key_hash=hashlib.sha256(b"seeded-series").hexdigest(),
            branch="main",
            hardware_class_id=ids["dgx-spark"],
            suite="serving",
            benchmark_id=serving_ids[16],
            metric_id=ids["output_throughput"],
        )
        session.add(series)
        incident = Incident(
            project_id=ids["project"], commit_id=ids[sha(REGRESSION_AT)], title="throughput drop"
        )
        session.add(incident)
        session.flush()
        regression = Alert(
            project_id=ids["project"],
            incident_id=incident.id,
            series_id=series.id,
            detector="change_point",
            suite="serving",
            kind="regression",
            branch="main",
            benchmark_id=serving_ids[16],
            metric_id=ids["output_throughput"],
            hardware_class_id=ids["dgx-spark"],
            last_good_commit_id=ids[sha(REGRESSION_AT - 1)],
            first_bad_commit_id=ids[sha(REGRESSION_AT)],
            relative_change=-0.2,
            p_value=0.001,
            state="new",
        )
        failure = Alert(
            project_id=ids["project"],
            series_id=series.id,
            detector="failures",
            suite="serving",
            kind="starts_failing",
            branch="main",
            benchmark_id=serving_ids[16],
            metric_id=ids["output_throughput"],
            hardware_class_id=ids["dgx-spark"],
            first_bad_commit_id=ids[sha(FAILURE_AT)],
            state="new",
        )
        session.add_all([regression, failure])
        session.add(
            Annotation(
                project_id=ids["project"],
                commit_id=ids[sha(ANNOTATION_AT)],
                hardware_class_id=ids["dgx-spark"],
                kind="environment_change",
                text="driver 550.54 -> 555.42 <script>alert('note')</script>",
            )
        )
        evil_runner = Runner(
            name=EVIL_RUNNER,
            hardware_class_id=ids[EVIL_HARDWARE],
            status="online",
            labels=["<b>gpu</b>"],
            last_heartbeat_at=utcnow(),
        )
        session.add(evil_runner)
        session.flush()
        now = utcnow()
        head = {"project_id": ids["project"], "commit_id": ids[sha(COMMITS)], "branch": "main", "attempt": 1}
        log = "\n".join(f"step {n}" for n in range(100)) + "\n" + EVIL_LOG
        session.add_all(
            [
                Job(
                    **head,
                    suite="serving",
                    hardware_class_id=ids["cpu-x86_64"],
                    state="succeeded",
                    started_at=now - timedelta(minutes=7),
                    finished_at=now - timedelta(minutes=1),
                    log=log,
                ),
                Job(
                    **head,
                    suite="collectives",
                    hardware_class_id=ids[EVIL_HARDWARE],
                    state="running",
                    runner_id=evil_runner.id,
                    claimed_at=now,
                    started_at=now - timedelta(minutes=2),
                ),
                Job(**head, suite="serving", hardware_class_id=ids["dgx-spark"], state="queued"),
            ]
        )
    return Seeded(api, serving_ids, evil_bench, regression.id, failure.id)


def _register_token(api: Api) -> str:
    with api.db.transaction() as session:
        return create_token(session, "seed-register", ["register"]).token


def _ids(api: Api) -> dict[str, int]:
    """Row ids by name: the project, commits by sha, hardware classes and metrics by name."""
    out: dict[str, int] = {}
    out["project"] = next(
        p["id"] for p in api.client.get("/api/v1/projects").json()["items"] if p["slug"] == PROJECT
    )
    for c in api.client.get("/api/v1/commits", params={"project": PROJECT, "limit": 1000}).json()["items"]:
        out[c["sha"]] = c["id"]
    for h in api.client.get("/api/v1/hardware", params={"limit": 1000}).json()["items"]:
        out[h["name"]] = h["id"]
    for m in api.client.get("/api/v1/metrics", params={"limit": 1000}).json()["items"]:
        out[m["name"]] = m["id"]
    return out


def page_urls(s: Seeded) -> dict[str, str]:
    """Every page of the site over the seeded data, by a short name."""
    bench = s.serving_bench_ids[16]
    return {
        "overview": "/",
        "catalog": f"/catalog?project={PROJECT}",
        "series": f"/series?project={PROJECT}&benchmark_id={bench}&metric=output_throughput",
        "series-vary": (
            f"/series?project={PROJECT}&benchmark_id={bench}&metric=median_ttft_ms"
            "&hardware_class=dgx-spark&vary=concurrency"
        ),
        "series-evil": (
            f"/series?project={PROJECT}&benchmark_id={s.evil_bench_id}&metric={quote(EVIL_METRIC, safe='')}"
        ),
        "commit": f"/commits/{sha(REGRESSION_AT)}?project={PROJECT}",
        "commit-evil": f"/commits/{sha(7)}?project={PROJECT}",
        "commit-failed": f"/commits/{sha(FAILURE_AT)}?project={PROJECT}",
        "commit-jobs": f"/commits/{sha(COMMITS)}?project={PROJECT}",
        "commit-branch": f"/commits/{sha(100)}?project={PROJECT}",
        "hardware": f"/hardware?project={PROJECT}&benchmark_id={bench}&metric=output_throughput",
        "hardware-choose": f"/hardware?project={PROJECT}",
        "serving": f"/serving?project={PROJECT}",
        "collectives": f"/collectives?project={PROJECT}",
        "alerts": f"/alerts?project={PROJECT}",
        "runners": "/runners",
        "docs": "/docs",
        "sign-in": "/admin/sign-in",
    }
