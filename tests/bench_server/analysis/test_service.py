"""Task bodies and `bench-server analyse` over a stored history: re-analysis finds the same rows,
an update run twice changes nothing, and lost updates are found again by the sweep."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, select

from bench_server.analysis import service, tasks
from bench_server.cli import main
from bench_server.kit.outbox import AppContext
from bench_server.models import AnalysedBatch, AnalysisSeries, Annotation, Incident, TriageEvent
from bench_server.models.alerts import Alert
from tests.bench_server.analysis.helpers import drain, failure, items, noisy, post_commit, post_series, sha
from tests.bench_server.conftest import Api

VOLATILE = {"updated_at", "analysed_at", "created_at"}


def rows(api: Api) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the analysis writes, without its timestamps."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with api.db.read_only() as session:
        for model in (Alert, Incident, TriageEvent, Annotation, AnalysisSeries):
            table = model.__table__
            columns = [c for c in table.columns if c.name not in VOLATILE]
            found = session.execute(select(*columns).order_by(table.c.id))
            out[table.name] = [tuple(r) for r in found]  # type: ignore[attr-defined]
    return out


def ctx_of(api: Api, **settings: Any) -> AppContext:
    base = api.client.app.state.settings  # type: ignore[attr-defined]
    return AppContext(api.db, base.model_copy(update=settings))


def a_history(api: Api) -> None:
    """A regression fixed later, one on a second class at the same commit, a benchmark that
    starts failing, a new fingerprint and a pull request's commit."""
    post_series(api, [*noisy(30, 100.0), *noisy(30, 90.0), *noisy(12, 100.0)])
    post_series(api, [*noisy(30, 100.0), *noisy(12, 80.0)], hardware_class="cpu-aarch64")
    new_driver = {"cpu": "Graviton", "driver": "2"}
    post_series(api, noisy(10, 80.0), first=42, hardware_class="cpu-aarch64", fingerprint=new_driver)
    other = "gemma-270m-1024x128"
    for i in range(40):
        post_commit(api, i, [50.0], benchmark=other)
    for i in range(40, 43):
        post_commit(api, i, benchmark=other, failures=[failure(other)])
    post_commit(api, 0, [85.0], commit={"sha": sha(1, "pr"), "parents": [sha(20)], "branch": "feature"})
    drain()


def test_reanalysis_finds_the_same_rows(
    api: Api, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    a_history(api)
    after_ingest = rows(api)
    kinds = sorted((a["kind"], a["branch"], a["state"]) for a in items(api, "alerts"))
    assert kinds == [
        ("regression", "feature", "new"),
        ("regression", "main", "fixed"),
        ("regression", "main", "new"),
        ("starts_failing", "main", "new"),
    ]
    assert [n["kind"] for n in items(api, "annotations")] == ["environment_change"]

    assert main(["--database-url", database_url, "analyse", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "alerts created" in printed and "alerts: regression (fixed)" in printed
    once = rows(api)
    assert main(["--database-url", database_url, "analyse", "--project", "exo", "--quiet"]) == 0
    twice = rows(api)
    assert once == twice
    assert after_ingest == once  # the incremental path and the full one agree
    assert main(["--database-url", database_url, "analyse", "--project", "nope", "--quiet"]) == 2


def test_an_update_run_again_changes_nothing(api: Api) -> None:
    post_series(api, [*noisy(30, 100.0), *noisy(20, 85.0)])
    batch = post_commit(api, 50, [85.5])
    drain()
    before = rows(api)
    summary = tasks.update(ctx_of(api), batch["batch_id"])
    assert summary["alerts_created"] == summary["alerts_updated"] == summary["alerts_withdrawn"] == 0
    assert rows(api) == before


def test_the_sweep_sends_updates_that_were_lost(api: Api) -> None:
    post_series(api, [*noisy(30, 100.0), 85.0])
    with api.db.transaction() as session:  # as if no analysis had ever run
        session.execute(delete(AnalysedBatch))
        session.execute(delete(AnalysisSeries))  # and with them their alerts
        session.execute(delete(Incident))
    assert tasks.catch_up(ctx_of(api)) == []  # too recent: their tasks may still be on the way
    lost = tasks.catch_up(ctx_of(api, analysis_catch_up_s=0))
    assert len(lost) == 31
    drain()
    assert [a["commit"] for a in items(api, "alerts")] == [sha(30)]
    with api.db.read_only() as session:
        assert len(session.scalars(select(AnalysedBatch)).all()) == 31


def test_work_of_a_batch(api: Api) -> None:
    def plan(batch: dict[str, Any]) -> list[str]:
        with api.db.read_only() as session:
            return [type(w).__name__ for w in service.plan_batch(session, batch["batch_id"])]

    # a machine's first batch also looks at its hardware class's fingerprints
    assert plan(post_commit(api, 0, [100.0])) == ["EnvironmentWork", "MetricWork"]
    assert plan(post_commit(api, 1, [100.0])) == ["MetricWork"]
    pr = {"sha": sha(9, "pr"), "parents": [sha(0)], "branch": "f"}
    assert plan(post_commit(api, 0, [100.0], commit=pr)) == ["CommitWork"]
    assert plan(post_commit(api, 2, [100.0], failures=[failure("other")])) == ["MetricWork", "FailureWork"]
    drain()
    with api.db.read_only() as session:
        assert service.plan_batch(session, 10_000) == []


def test_fingerprint_changes_name_the_keys_that_differ() -> None:
    before = {"gpu": {"driver": "535", "name": "H100"}, "os": "ubuntu-22.04", "flags": ["a"]}
    after = {"gpu": {"driver": "550", "name": "H100"}, "kernel": "6.8", "flags": ["a", "b"]}
    assert service.fingerprint_changes(before, after) == {
        "flags": ['["a"]', '["a", "b"]'],
        "gpu.driver": ["535", "550"],
        "kernel": [None, "6.8"],
        "os": ["ubuntu-22.04", None],
    }
