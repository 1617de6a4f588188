"""Server time and size of every website page over a 1,000,000-result PostgreSQL store.

The store is the shape the site is for: 2,000 commits on four hardware classes (a cluster among
them), each commit x class a serving sweep (5 concurrencies x 15 metrics) and an all-reduce
sweep (12 message sizes x 4 metrics, and the average busbw) -- 125 results, 1,000,000 in all;
regressions with their alerts and incidents, failures, annotations, runners and jobs. Rows are
written with COPY; the series catalog is then filled by revision 0006's own backfill (timed).

Each page is loaded 50 times from a live `bench-server serve`; the table gives p50/p95 of the
time to the last byte on localhost (server time: the request never leaves the machine) and the
bytes of HTML (with the figures' JSON; plotly.js is a separate, cached file). Targets: p95 under
300 ms and under 2 MB per page. The last line is JSON: {"worst_page_p95_ms", "largest_page_bytes"}.
`--commits N` makes the store smaller (N x 500 results).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_server.kit.sql import stable_hash
from benchmarks._live import live_server, scratch_database
from benchmarks.ingest_and_query import log, pct, psycopg_url

REPO = Path(__file__).resolve().parents[1]
HARDWARE = [("cpu-x86_64", 0.05), ("dgx-spark", 1.0), ("h100-sxm", 4.0)]
CLUSTER = "1x dgx-spark + 2x mac-studio-m3-ultra"
CONCURRENCY = (1, 4, 16, 64, 256)
SERVING_METRICS = [
    ("output_throughput", "tok/s", "higher"),
    ("total_token_throughput", "tok/s", "higher"),
    ("request_throughput", "req/s", "higher"),
    ("request_goodput", "req/s", "higher"),
    ("mean_ttft_ms", "ms", "lower"),
    ("median_ttft_ms", "ms", "lower"),
    ("p90_ttft_ms", "ms", "lower"),
    ("p99_ttft_ms", "ms", "lower"),
    ("mean_tpot_ms", "ms", "lower"),
    ("median_tpot_ms", "ms", "lower"),
    ("p99_tpot_ms", "ms", "lower"),
    ("median_itl_ms", "ms", "lower"),
    ("p99_itl_ms", "ms", "lower"),
    ("median_e2el_ms", "ms", "lower"),
    ("p99_e2el_ms", "ms", "lower"),
]
SIZES = [1 << k for k in range(10, 34, 2)]  # 1 KiB .. 8 GiB, 12 sizes
SIZE_METRICS = ["busbw", "algbw", "busbw_inplace", "algbw_inplace"]
REGRESSIONS = 20  # planted, each with an alert on the dgx-spark output_throughput series
CALLS = 50


def copy_rows(conn: psycopg.Connection[Any], table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
    with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def build_store(url: str, commits: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    rng = random.Random(1)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with psycopg.connect(psycopg_url(url)) as conn:
        one = conn.execute
        project = one(
            "INSERT INTO projects (slug, name, default_branch, created_at)"
            " VALUES ('exo', 'exo', 'main', now())"
            " RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        one(
            "INSERT INTO hardware_classes (name, kind, description, accelerators, members, created_at)"
            " VALUES (%s, 'cluster', 'cluster', 3, %s, now())",
            (
                CLUSTER,
                json.dumps(
                    [{"class": "dgx-spark", "count": 1}, {"class": "mac-studio-m3-ultra", "count": 2}]
                ),
            ),
        )
        one("UPDATE hardware_classes SET power_w = 240, price_per_hour = 3 WHERE name = 'dgx-spark'")
        one("UPDATE hardware_classes SET power_w = 10200, price_per_hour = 98 WHERE name = 'h100-sxm'")
        names = [h for h, _ in HARDWARE] + [CLUSTER]
        speed = dict(HARDWARE) | {CLUSTER: 1.6}
        hw = {n: i for n, i in one("SELECT name, id FROM hardware_classes WHERE name = ANY(%s)", (names,))}
        machines = {}
        for n in names:
            machines[n] = one(
                "INSERT INTO machines (hardware_class_id, fingerprint, fingerprint_hash, hostname,"
                " created_at)"
                " VALUES (%s, %s, %s, %s, now()) RETURNING id",
                (hw[n], json.dumps({"class": n, "driver": "555.42"}), stable_hash({"perf": n}), f"host-{n}"),
            ).fetchone()[0]  # type: ignore[index]
        copy_rows(
            conn,
            "commits",
            "project_id, sha, branch, parents, author, message, committed_at, order_key, created_at",
            [
                (
                    project,
                    f"{i:040x}",
                    "main",
                    json.dumps([f"{i - 1:040x}"] if i > 1 else []),
                    f"dev{i % 17}",
                    f"commit {i}: change the scheduler\n\nA longer body that explains the change.",
                    start + timedelta(hours=i),
                    i,
                    start,
                )
                for i in range(1, commits + 1)
            ],
        )
        commit_ids = [
            r[0] for r in one("SELECT id FROM commits WHERE project_id = %s ORDER BY order_key", (project,))
        ]
        benches: list[tuple[str, str, dict[str, Any]]] = []
        for c in CONCURRENCY:
            benches.append(
                ("serving", "chat", {"model": "gemma-3-270m", "isl": 1024, "osl": 128, "concurrency": c})
            )
        coll = {"collective": "all_reduce", "nranks": 8, "dtype": "float", "backend": "nccl"}
        for size in SIZES:
            benches.append(("collectives", "all_reduce", {**coll, "size_bytes": size}))
        benches.append(("collectives", "all_reduce", {**coll, "min_bytes": SIZES[0], "max_bytes": SIZES[-1]}))
        gather = {**coll, "collective": "all_gather", "min_bytes": SIZES[0], "max_bytes": SIZES[-1]}
        benches.append(("collectives", "all_gather", gather))
        copy_rows(
            conn,
            "benchmarks",
            "suite, name, params, params_hash, created_at",
            [(s, n, json.dumps(p), stable_hash(p), start) for s, n, p in benches],
        )
        bench_ids = [r[0] for r in one("SELECT id FROM benchmarks ORDER BY id")]
        metric_rows = [(m, u, d) for m, u, d in SERVING_METRICS] + [
            (m, "GB/s", "higher") for m in SIZE_METRICS
        ]
        metric_rows.append(("avg_busbw", "GB/s", "higher"))
        copy_rows(conn, "metrics", "name, unit, direction, created_at", [(*m, start) for m in metric_rows])
        metric_id = {n: i for n, i in one("SELECT name, id FROM metrics")}
        # (benchmark id, metric id, base value, samples?) per result of one commit x class.
        plan: list[tuple[int, int, float, bool]] = []
        for b, (suite, _, params) in zip(bench_ids, benches, strict=True):
            if suite == "serving":
                c = params["concurrency"]
                for m, _, _ in SERVING_METRICS:
                    base = 500.0 * c**0.6 if "throughput" in m or "goodput" in m else 30.0 * c**0.3
                    plan.append((b, metric_id[m], base, m == "median_ttft_ms"))
            elif "size_bytes" in params:
                for m in SIZE_METRICS:
                    plan.append(
                        (b, metric_id[m], 20.0 * params["size_bytes"] / (params["size_bytes"] + 1e6), False)
                    )
            else:
                plan.append((b, metric_id["avg_busbw"], 10.0, False))
        assert len(plan) == 125, len(plan)
        copy_rows(
            conn,
            "ingest_batches",
            "idempotency_key, body_hash, project_id, commit_id, machine_id, branch, source, context,"
            " n_results, n_failures, created_at",
            [
                (f"b{ci}-{n}", "0" * 64, project, cid, machines[n], "main", "perf", "{}", len(plan), 0, start)
                for ci, cid in enumerate(commit_ids)
                for n in names
            ],
        )
        batch_of = {
            (c, m): b
            for b, c, m in one(
                "SELECT id, commit_id, machine_id FROM ingest_batches WHERE project_id = %s", (project,)
            )
        }
        conn.commit()
        regress_at = sorted(rng.sample(range(commits // 10, commits), min(REGRESSIONS, commits // 2)))
        log(f"  writing {commits * len(names) * len(plan):,} results ...")
        with conn.cursor().copy(
            "COPY results (batch_id, project_id, commit_id, branch, machine_id, hardware_class_id,"
            " benchmark_id, metric_id, value, samples, created_at) FROM STDIN"
        ) as copy:
            buf = io.StringIO()
            for ci, cid in enumerate(commit_ids):
                drop = 0.9 ** sum(1 for r in regress_at if ci >= r)
                for n in names:
                    batch = batch_of[(cid, machines[n])]
                    for b, m, base, with_samples in plan:
                        level = base * speed[n] * (drop if n == "dgx-spark" else 1.0)
                        value = level * (1 + rng.gauss(0, 0.01))
                        samples = (
                            json.dumps([round(value * (1 + rng.gauss(0, 0.05)), 3) for _ in range(20)])
                            if with_samples
                            else "\\N"
                        )
                        buf.write(
                            f"{batch}\t{project}\t{cid}\tmain\t{machines[n]}\t{hw[n]}\t{b}\t{m}\t"
                            f"{value:.5f}\t{samples}\t2025-01-01 00:00:00+00\n"
                        )
                if ci % 100 == 99:
                    copy.write(buf.getvalue())
                    buf = io.StringIO()
            copy.write(buf.getvalue())
        conn.commit()
        add_activity(
            conn, project, commit_ids, hw, bench_ids[3], metric_id["output_throughput"], regress_at, rng
        )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
        total = conn.execute("SELECT count(*) FROM results").fetchone()[0]  # type: ignore[index]
        log(f"  built {total:,} results in {time.perf_counter() - t0:.1f} s")
        t1 = time.perf_counter()
        conn.execute(backfill_sql())
        backfill_s = time.perf_counter() - t1
        conn.execute("VACUUM ANALYZE series")
        series = conn.execute("SELECT count(*) FROM series").fetchone()[0]  # type: ignore[index]
        log(f"  series catalog: {series} series backfilled in {backfill_s:.1f} s")
    return {
        "total": total,
        "series": series,
        "backfill_s": backfill_s,
        "bench_ids": bench_ids,
        "regressed": f"{regress_at[-1] + 1:040x}",
    }


def add_activity(
    conn: psycopg.Connection[Any],
    project: int,
    commit_ids: list[int],
    hw: dict[str, int],
    bench: int,
    metric: int,
    regress_at: list[int],
    rng: random.Random,
) -> None:
    """Alerts (with incidents) at the planted regressions, failures, annotations, runners and jobs."""
    spark = hw["dgx-spark"]
    for r in regress_at:
        incident = conn.execute(
            "INSERT INTO incidents (project_id, commit_id, title, created_at)"
            " VALUES (%s, %s, 'throughput drop', now())"
            " RETURNING id",
            (project, commit_ids[r]),
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "INSERT INTO alerts (project_id, incident_id, kind, branch, benchmark_id, metric_id,"
            " hardware_class_id, last_good_commit_id, first_bad_commit_id, magnitude, significance, state,"
            " created_at, updated_at)"
            " VALUES (%s, %s, 'regression', 'main', %s, %s, %s, %s, %s, -0.1, 0.001, %s, now(), now())",
            (
                project,
                incident,
                bench,
                metric,
                spark,
                commit_ids[r - 1],
                commit_ids[r],
                rng.choice(["new", "acknowledged"]),
            ),
        )
    for _ in range(50):
        cid = rng.choice(commit_ids)
        conn.execute(
            "INSERT INTO failures (project_id, commit_id, branch, hardware_class_id, benchmark_id, suite,"
            " failure_class, message, log_excerpt, created_at)"
            " VALUES (%s, %s, 'main', %s, %s, 'serving', 'oom', 'engine killed (exit 137)', %s, now())",
            (project, cid, rng.choice(list(hw.values())), bench, "line\n" * 40),
        )
    for k in range(5):
        conn.execute(
            "INSERT INTO annotations (project_id, commit_id, hardware_class_id, kind, text, created_at)"
            " VALUES (%s, %s, %s, 'environment_change', 'driver update', now())",
            (project, commit_ids[len(commit_ids) * (k + 1) // 6], spark),
        )
    runner_ids = []
    for k in range(12):
        runner_ids.append(
            conn.execute(
                "INSERT INTO runners (name, hardware_class_id, labels, status, last_heartbeat_at, created_at)"
                " VALUES (%s, %s, '[]', 'online', now(), now()) RETURNING id",
                (f"runner-{k}", list(hw.values())[k % len(hw)]),
            ).fetchone()[0]  # type: ignore[index]
        )
    log_text = "\n".join(f"step {n}: ok" for n in range(2000))
    for k in range(300):
        cid = commit_ids[-1 - (k // 4) % len(commit_ids)]
        state = "queued" if k < 20 else "running" if k < 26 else rng.choice(["succeeded", "failed"])
        conn.execute(
            "INSERT INTO jobs (project_id, commit_id, branch, suite, hardware_class_id, state, priority,"
            " attempt,"
            " max_attempts, runner_id, log, forced, created_at, started_at, finished_at)"
            " VALUES (%s, %s, 'main', %s, %s, %s, 10, 1, 3, %s, %s, false, now(), now(), %s)",
            (
                project,
                cid,
                ["serving", "collectives"][k % 2],
                list(hw.values())[k % len(hw)],
                state,
                runner_ids[k % len(runner_ids)] if state == "running" else None,
                log_text,
                None if state in ("queued", "running") else datetime.now(UTC),
            ),
        )


def backfill_sql() -> str:
    """Revision 0006's backfill, run as the migration runs it."""
    path = next((REPO / "migrations" / "versions").glob("*_series_catalog.py"))
    spec = importlib.util.spec_from_file_location("series_catalog_revision", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.BACKFILL)


def pages(store: dict[str, Any]) -> dict[str, str]:
    serving_64 = store["bench_ids"][3]
    return {
        "overview": "/",
        "series index": "/catalog?project=exo",
        "series, 4 classes": f"/series?project=exo&benchmark_id={serving_64}&metric=output_throughput",
        "series, 1 class": f"/series?project=exo&benchmark_id={serving_64}&metric=median_ttft_ms"
        "&hardware_class=dgx-spark",
        "series by concurrency": f"/series?project=exo&benchmark_id={serving_64}&metric=median_ttft_ms"
        "&hardware_class=dgx-spark&vary=concurrency",
        "commit": f"/commits/{store['regressed']}?project=exo",
        "hardware": f"/hardware?project=exo&benchmark_id={serving_64}&metric=output_throughput",
        "serving": "/serving?project=exo",
        "collectives": "/collectives?project=exo",
        "alerts": "/alerts?project=exo",
        "runners and jobs": "/runners",
        "docs": "/docs",
    }


def measure(base: str, paths: dict[str, str], calls: int) -> dict[str, dict[str, float]]:
    out = {}
    with httpx.Client(base_url=base, timeout=60, headers={"accept": "text/html"}) as client:
        for name, path in paths.items():
            for _ in range(3):  # warm-up
                client.get(path).raise_for_status()
            times = []
            size = 0
            for _ in range(calls):
                t = time.perf_counter()
                r = client.get(path)
                times.append(time.perf_counter() - t)
                r.raise_for_status()
                size = len(r.content)
            out[name] = {"p50_ms": pct(times, 50) * 1e3, "p95_ms": pct(times, 95) * 1e3, "bytes": size}
            log(f"  {name}: p95 {out[name]['p95_ms']:.1f} ms, {size:,} bytes")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=2000, help="commits in the store (x 500 results)")
    parser.add_argument("--calls", type=int, default=CALLS)
    args = parser.parse_args()
    with scratch_database("bench_pages") as url:
        log(f"building the store: {args.commits} commits x 4 hardware classes x 125 results ...")
        store = build_store(url, args.commits)
        with live_server(url) as base:
            results = measure(base, pages(store), args.calls)
    print(
        f"\nwebsite pages over {store['total']:,} results ({store['series']} series), {args.calls} loads each"
    )
    print(f"series catalog backfill (revision 0006): {store['backfill_s']:.1f} s")
    print(f"{'page':<24}{'p50 ms':>10}{'p95 ms':>10}{'bytes':>12}")
    for name, r in results.items():
        flag = "  over target" if r["p95_ms"] > 300 or r["bytes"] > 2_000_000 else ""
        print(f"{name:<24}{r['p50_ms']:>10.1f}{r['p95_ms']:>10.1f}{int(r['bytes']):>12,}{flag}")
    headline = {
        "worst_page_p95_ms": round(max(r["p95_ms"] for r in results.values()), 1),
        "largest_page_bytes": int(max(r["bytes"] for r in results.values())),
    }
    print(json.dumps(headline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
