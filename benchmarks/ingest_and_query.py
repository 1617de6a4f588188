"""Ingest throughput and history query latency of the results store on PostgreSQL.

(a) Batches of 1,000 metric values posted through the API to a live server, beside the same
    rows written straight into the results table with psycopg COPY (the baseline).
(b) A store of ~1,000,000 results (2,000 commits x 500 series): the series endpoint for one
    2,000-point series and the commit comparison endpoint, p50/p95 over 100 calls each, beside
    the raw SQL that fetches the same data.

Prints a table, then one JSON line with the headline figures. `--results N` makes (b) smaller.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import psycopg

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))

from bench_server.auth.service import create_token
from bench_server.kit.db import Database
from bench_server.kit.sql import stable_hash
from bench_server.models import Project
from benchmarks._live import live_server, scratch_database

BENCHMARKS = 100
METRICS = 5  # BENCHMARKS x METRICS = 500 series
VALUES_PER_BATCH = 1000


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def psycopg_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def setup_project(url: str) -> str:
    db = Database.from_url(url)
    with db.transaction() as s:
        s.add(Project(slug="exo", name="exo", default_branch="main"))
        token = create_token(s, "bench", ["runner"]).token
    db.engine.dispose()
    return token


def ingest_batch(i: int) -> dict[str, Any]:
    results = []
    for b in range(VALUES_PER_BATCH // 10):
        for m in range(10):
            results.append(
                {
                    "suite": "serving",
                    "benchmark": f"bench-{b:03d}",
                    "params": {"isl": 128, "osl": 64, "c": b},
                    "metric": f"metric_{m}",
                    "unit": "ms",
                    "direction": "lower",
                    "value": 10.0 + random.random(),
                }
            )
    return {
        "idempotency_key": f"perf-{i}",
        "project": "exo",
        "commit": {"sha": f"{i:040x}", "branch": "main", "parents": [f"{i - 1:040x}"] if i else []},
        "machine": {"hardware_class": "cpu-x86_64", "fingerprint": {"cpu": "bench"}},
        "results": results,
    }


def measure_ingest(batches: int) -> dict[str, float]:
    with scratch_database() as url:
        token = setup_project(url)
        bodies = [ingest_batch(i) for i in range(batches + 2)]
        with live_server(url) as base, httpx.Client(base_url=base, timeout=60) as client:
            headers = {"Authorization": f"Bearer {token}"}
            for body in bodies[:2]:  # warm-up: creates the benchmarks and metrics
                client.post("/api/v1/results", json=body, headers=headers).raise_for_status()
            start = time.perf_counter()
            for n, body in enumerate(bodies[2:], 1):
                r = client.post("/api/v1/results", json=body, headers=headers)
                if r.status_code != 201:
                    raise RuntimeError(r.text)
                if n % 10 == 0:
                    log(f"  api ingest: {n}/{batches} batches")
            api_s = time.perf_counter() - start
        api_rate = batches * VALUES_PER_BATCH / api_s

        # Baseline: the same rows COPYed into the results table, one transaction per batch.
        with psycopg.connect(psycopg_url(url)) as conn:
            ids = conn.execute(
                "SELECT batch_id, project_id, commit_id, machine_id, hardware_class_id FROM results LIMIT 1"
            ).fetchone()
            assert ids is not None
            bench = dict(conn.execute("SELECT name, id FROM benchmarks").fetchall())
            metric = dict(conn.execute("SELECT name, id FROM metrics").fetchall())
            now = datetime.now(UTC)
            start = time.perf_counter()
            for body in bodies[2:]:
                with (
                    conn.cursor() as cur,
                    cur.copy(
                        "COPY results (batch_id, project_id, commit_id, branch, machine_id,"
                        " hardware_class_id, benchmark_id, metric_id, value, created_at) FROM STDIN"
                    ) as copy,
                ):
                    for r in body["results"]:
                        copy.write_row(
                            (
                                ids[0],
                                ids[1],
                                ids[2],
                                "main",
                                ids[3],
                                ids[4],
                                bench[r["benchmark"]],
                                metric[r["metric"]],
                                r["value"],
                                now,
                            )
                        )
                conn.commit()
            copy_s = time.perf_counter() - start
        copy_rate = batches * VALUES_PER_BATCH / copy_s
    return {
        "api_values_per_s": api_rate,
        "copy_values_per_s": copy_rate,
        "ingest_ratio": api_rate / copy_rate,
    }


def build_history(url: str, n_results: int) -> dict[str, Any]:
    """Fill the store with COPY: n_results / 500 commits, 500 series, one machine."""
    commits = max(2, n_results // (BENCHMARKS * METRICS))
    t0 = time.perf_counter()
    with psycopg.connect(psycopg_url(url)) as conn:
        project_id = conn.execute(
            "INSERT INTO projects (slug, name, default_branch, created_at) VALUES ('exo','exo','main', now())"
            " RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        hw_id = conn.execute("SELECT id FROM hardware_classes WHERE name='cpu-x86_64'").fetchone()[0]  # type: ignore[index]
        machine_id = conn.execute(
            "INSERT INTO machines (hardware_class_id, fingerprint, fingerprint_hash, created_at)"
            " VALUES (%s, '{}', %s, now()) RETURNING id",
            (hw_id, stable_hash({"perf": 1})),
        ).fetchone()[0]  # type: ignore[index]
        start = datetime(2024, 1, 1, tzinfo=UTC)
        with conn.cursor().copy(
            "COPY commits (project_id, sha, branch, parents, committed_at, order_key, created_at) FROM STDIN"
        ) as copy:
            for i in range(1, commits + 1):
                parents = json.dumps([f"{i - 1:040x}"] if i > 1 else [])
                copy.write_row(
                    (project_id, f"{i:040x}", "main", parents, start + timedelta(hours=i), i, start)
                )
        commit_ids = [r[0] for r in conn.execute("SELECT id FROM commits ORDER BY order_key")]
        with conn.cursor().copy(
            "COPY benchmarks (suite, name, params, params_hash, created_at) FROM STDIN"
        ) as copy:
            for b in range(BENCHMARKS):
                params = {"isl": 128, "osl": 64, "concurrency": b}
                copy.write_row(("serving", f"bench-{b:03d}", json.dumps(params), stable_hash(params), start))
        bench_ids = [r[0] for r in conn.execute("SELECT id FROM benchmarks ORDER BY id")]
        with conn.cursor().copy("COPY metrics (name, unit, direction, created_at) FROM STDIN") as copy:
            for m in range(METRICS):
                copy.write_row((f"metric_{m}", "ms", "lower", start))
        metric_ids = [r[0] for r in conn.execute("SELECT id FROM metrics ORDER BY id")]
        with conn.cursor().copy(
            "COPY ingest_batches (idempotency_key, body_hash, project_id, commit_id, machine_id, branch,"
            " source, context, n_results, n_failures, created_at) FROM STDIN"
        ) as copy:
            for i, cid in enumerate(commit_ids):
                copy.write_row(
                    (f"hist-{i}", "0" * 64, project_id, cid, machine_id, "main", "perf", "{}", 500, 0, start)
                )
        batch_ids = [r[0] for r in conn.execute("SELECT id FROM ingest_batches ORDER BY id")]
        conn.commit()
        log(f"  building {commits * BENCHMARKS * METRICS:,} results ...")
        rng = random.Random(1)
        with conn.cursor().copy(
            "COPY results (batch_id, project_id, commit_id, branch, machine_id, hardware_class_id,"
            " benchmark_id, metric_id, value, created_at) FROM STDIN"
        ) as copy:
            buf = io.StringIO()
            for ci, (cid, bid) in enumerate(zip(commit_ids, batch_ids, strict=True)):
                for bench in bench_ids:
                    for met in metric_ids:
                        buf.write(
                            f"{bid}\t{project_id}\t{cid}\tmain\t{machine_id}\t{hw_id}\t{bench}\t{met}\t"
                            f"{10 + rng.random():.6f}\t2024-01-01 00:00:00+00\n"
                        )
                if ci % 50 == 49:
                    copy.write(buf.getvalue())
                    buf = io.StringIO()
            copy.write(buf.getvalue())
        conn.commit()
        # What autovacuum does to an insert-only table soon after a load: statistics and the
        # visibility map (which lets the series query run as an index-only scan).
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
        total = conn.execute("SELECT count(*) FROM results").fetchone()[0]  # type: ignore[index]
    log(f"  built {total:,} results in {time.perf_counter() - t0:.1f} s")
    return {
        "project_id": project_id,
        "hw_id": hw_id,
        "commits": commits,
        "bench_ids": bench_ids,
        "metric_ids": metric_ids,
        "total": total,
    }


# The same data the series endpoint returns: per commit, the mean and count of its results.
RAW_SERIES = """
SELECT c.sha, c.order_key, c.committed_at::text, agg.value, agg.n
FROM (
  SELECT commit_id, avg(value) AS value, count(*) AS n FROM results
  WHERE project_id = %s AND benchmark_id = %s AND metric_id = %s AND hardware_class_id = %s
    AND branch = 'main'
  GROUP BY commit_id
) agg JOIN commits c ON c.id = agg.commit_id
ORDER BY c.order_key, c.id
"""
RAW_COMMIT = """
SELECT benchmark_id, metric_id, hardware_class_id, avg(value), count(*)
FROM results WHERE commit_id = %s GROUP BY benchmark_id, metric_id, hardware_class_id
"""


def measure_queries(n_results: int, calls: int) -> dict[str, float]:
    with scratch_database() as url:
        h = build_history(url, n_results)
        rng = random.Random(7)
        picks = [(rng.choice(h["bench_ids"]), rng.randrange(METRICS)) for _ in range(calls)]
        commit_picks = [rng.randrange(2, h["commits"] + 1) for _ in range(calls)]
        out: dict[str, float] = {"results_in_store": h["total"], "series_points": h["commits"]}
        with psycopg.connect(psycopg_url(url)) as conn:
            times = []
            for bench, m in picks:
                t = time.perf_counter()
                rows = conn.execute(
                    RAW_SERIES, (h["project_id"], bench, h["metric_ids"][m], h["hw_id"])
                ).fetchall()
                times.append(time.perf_counter() - t)
                assert len(rows) == h["commits"]
            out["series_raw_p50_ms"], out["series_raw_p95_ms"] = pct(times, 50) * 1e3, pct(times, 95) * 1e3
            times = []
            for i in commit_picks:
                t = time.perf_counter()
                for sha in (f"{i:040x}", f"{i - 1:040x}"):
                    cid = conn.execute("SELECT id FROM commits WHERE sha = %s", (sha,)).fetchone()[0]  # type: ignore[index]
                    conn.execute(RAW_COMMIT, (cid,)).fetchall()
                times.append(time.perf_counter() - t)
            out["commit_raw_p50_ms"], out["commit_raw_p95_ms"] = pct(times, 50) * 1e3, pct(times, 95) * 1e3
            conn.rollback()

        with live_server(url) as base, httpx.Client(base_url=base, timeout=60) as client:
            for _ in range(5):  # warm-up
                client.get(
                    "/api/v1/series",
                    params={
                        "project": "exo",
                        "benchmark_id": h["bench_ids"][0],
                        "metric": "metric_0",
                        "hardware_class": "cpu-x86_64",
                    },
                )
            times = []
            for bench, m in picks:
                t = time.perf_counter()
                r = client.get(
                    "/api/v1/series",
                    params={
                        "project": "exo",
                        "benchmark_id": bench,
                        "metric": f"metric_{m}",
                        "hardware_class": "cpu-x86_64",
                    },
                )
                times.append(time.perf_counter() - t)
                r.raise_for_status()
                assert r.json()["length"] == h["commits"]
            out["series_p50_ms"], out["series_p95_ms"] = pct(times, 50) * 1e3, pct(times, 95) * 1e3
            times = []
            for i in commit_picks:
                t = time.perf_counter()
                r = client.get(f"/api/v1/commits/{i:040x}", params={"project": "exo"})
                times.append(time.perf_counter() - t)
                r.raise_for_status()
                assert len(r.json()["results"]) == BENCHMARKS * METRICS
            out["commit_p50_ms"], out["commit_p95_ms"] = pct(times, 50) * 1e3, pct(times, 95) * 1e3
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=1_000_000, help="results in the query store (b)")
    parser.add_argument("--ingest-batches", type=int, default=30, help="timed batches of 1,000 values (a)")
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--only", choices=["ingest", "queries"], help="run one part (the other prints 0)")
    args = parser.parse_args()

    nothing = {"api_values_per_s": 0.0, "copy_values_per_s": 0.0, "ingest_ratio": 0.0}
    ingest = nothing
    if args.only != "queries":
        log("(a) ingest through the API vs COPY ...")
        ingest = measure_ingest(args.ingest_batches)
    queries = dict.fromkeys(
        ["results_in_store", "series_points"]
        + [
            f"{k}_{s}" for k in ("series", "series_raw", "commit", "commit_raw") for s in ("p50_ms", "p95_ms")
        ],
        0.0,
    )
    queries["series_raw_p95_ms"] = queries["commit_raw_p95_ms"] = 1.0
    if args.only != "ingest":
        log("(b) history queries ...")
        queries = measure_queries(args.results, args.calls)

    print(f"\n(a) ingest, {args.ingest_batches} batches of {VALUES_PER_BATCH} values, PostgreSQL")
    print(f"{'path':<28}{'values/s':>14}{'ratio':>10}")
    print(f"{'psycopg COPY (baseline)':<28}{ingest['copy_values_per_s']:>14,.0f}{1.0:>10.2f}")
    print(f"{'POST /api/v1/results':<28}{ingest['api_values_per_s']:>14,.0f}{ingest['ingest_ratio']:>10.2f}")
    print(
        f"\n(b) queries over {int(queries['results_in_store']):,} results, "
        f"{int(queries['series_points'])}-point series, {args.calls} calls"
    )
    print(f"{'query':<28}{'p50 ms':>10}{'p95 ms':>10}{'p95 / raw':>12}")
    for name, key in (("series", "series"), ("commit comparison", "commit")):
        print(
            f"{name + ' raw SQL':<28}{queries[key + '_raw_p50_ms']:>10.2f}"
            f"{queries[key + '_raw_p95_ms']:>10.2f}"
            f"{1.0:>12.2f}"
        )
        print(
            f"{name + ' API':<28}{queries[key + '_p50_ms']:>10.2f}{queries[key + '_p95_ms']:>10.2f}"
            f"{queries[key + '_p95_ms'] / queries[key + '_raw_p95_ms']:>12.2f}"
        )
    headline = {
        "api_values_per_s": round(ingest["api_values_per_s"], 1),
        "copy_values_per_s": round(ingest["copy_values_per_s"], 1),
        "ingest_ratio": round(ingest["ingest_ratio"], 4),
        "series_p95_ms": round(queries["series_p95_ms"], 3),
        "series_raw_p95_ms": round(queries["series_raw_p95_ms"], 3),
        "commit_p95_ms": round(queries["commit_p95_ms"], 3),
    }
    print(json.dumps(headline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
