"""Revision 0006 builds the series catalog from the results already stored."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from bench_server.kit.db import normalise_url
from bench_server.kit.migrate import upgrade
from tests.migrations.test_migrations import empty_database  # noqa: F401  (the fixture)

NOW = "2026-01-01 00:00:00"
INSERT_RESULT = (
    "INSERT INTO results (batch_id, project_id, commit_id, branch, machine_id, hardware_class_id,"
    " benchmark_id, metric_id, value, created_at)"
    " VALUES (:b, :p, :c, :branch, :m, :hw, :bench, :metric, :v, :t)"
)
INSERT_BATCH = (
    "INSERT INTO ingest_batches (idempotency_key, body_hash, project_id, commit_id, machine_id, branch,"
    " source, context, n_results, n_failures, created_at)"
    " VALUES ('k', 'h', :p, :c, :m, 'main', 'api', '{}', 0, 0, :t)"
)


def test_backfill_matches_what_ingest_would_have_written(empty_database: str) -> None:  # noqa: F811
    upgrade(empty_database, "0004")
    engine = create_engine(normalise_url(empty_database))
    with engine.begin() as conn:

        def one(sql: str, **params: object) -> int:
            return int(conn.execute(text(sql + " RETURNING id"), params).scalar_one())

        project = one(
            "INSERT INTO projects (slug, name, default_branch, created_at) VALUES ('p', 'p', 'main', :t)",
            t=NOW,
        )
        hw = int(conn.execute(text("SELECT id FROM hardware_classes WHERE name = 'cpu-x86_64'")).scalar_one())
        machine = one(
            "INSERT INTO machines (hardware_class_id, fingerprint, fingerprint_hash, created_at)"
            " VALUES (:hw, '{}', 'h', :t)",
            hw=hw,
            t=NOW,
        )
        bench = one(
            "INSERT INTO benchmarks (suite, name, params, params_hash, created_at)"
            " VALUES ('s', 'b', '{}', 'x', :t)",
            t=NOW,
        )
        metric = one(
            "INSERT INTO metrics (name, unit, direction, created_at) VALUES ('m', 'ms', 'lower', :t)", t=NOW
        )
        # Inserted out of first-parent order: order keys 2, 1, 3.
        commits = [
            one(
                "INSERT INTO commits (project_id, sha, branch, parents, order_key, created_at)"
                " VALUES (:p, :sha, 'main', '[]', :k, :t)",
                p=project,
                sha=f"{k:040x}",
                k=k,
                t=NOW,
            )
            for k in (2, 1, 3)
        ]
        batch = one(
            INSERT_BATCH,
            p=project,
            c=commits[0],
            m=machine,
            t=NOW,
        )
        common = {
            "b": batch,
            "p": project,
            "m": machine,
            "hw": hw,
            "bench": bench,
            "metric": metric,
            "t": NOW,
        }
        values = [(commits[0], 10.0), (commits[1], 20.0), (commits[2], 30.0), (commits[2], 40.0)]
        for commit, value in values:
            conn.execute(text(INSERT_RESULT), {**common, "c": commit, "branch": "main", "v": value})
        # A result with no branch never belongs to a series (the series query filters on it).
        conn.execute(text(INSERT_RESULT), {**common, "c": commits[0], "branch": None, "v": 1.0})
    upgrade(empty_database)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT branch, first_commit_id, first_order_key, last_commit_id, last_order_key, last_value,"
                " last_n, point_count, result_count FROM series"
            )
        ).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("main", commits[1], 1, commits[2], 3, 35.0, 2, 3, 4)]
