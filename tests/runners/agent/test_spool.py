"""Spool: ordered, exactly-once delivery against a real local HTTP server, outages included."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from bench_runner.client import BenchClient
from bench_runner.spool import Spool

from .fakeserver import FakeServer, State


def batch(n: int, value: float = 1.0) -> dict[str, Any]:
    return {
        "idempotency_key": f"runner-7/job-{n}/attempt-1",
        "project": "demo",
        "commit": {"sha": f"{n:040x}"},
        "machine": {"hardware_class": "cpu-x86_64", "fingerprint": {"arch": "x86_64"}},
        "results": [
            {
                "suite": "s",
                "benchmark": "b",
                "metric": "m",
                "unit": "s",
                "direction": "lower",
                "value": value,
                "params": {},
            }
        ],
        "failures": [],
    }


def client(url: str) -> BenchClient:
    return BenchClient(url, "runner-token", retries=2, backoff=0.01, timeout=5)


def posted_keys(state: State) -> list[str]:
    return [r.json()["idempotency_key"] for r in state.seen("POST", "/api/v1/results")]


def test_outage_then_ordered_exactly_once_delivery(tmp_path: Path) -> None:
    # a port with nothing listening: the server is down
    down = FakeServer().start()
    port = down.port
    down.stop()
    spool = Spool(tmp_path / "spool")
    with client(f"http://127.0.0.1:{port}") as c:
        for n in (1, 2, 3):
            report = spool.submit(c, batch(n))
            assert report.remaining == n and report.delivered == [] and report.error
    assert [p.name for p in spool.pending()] == [
        "000000000001.json",
        "000000000002.json",
        "000000000003.json",
    ]
    assert json.loads(spool.pending()[1].read_text())["idempotency_key"] == "runner-7/job-2/attempt-1"

    # the server comes back on the same port, answers 503 once, then works
    state = State(unavailable=1)
    srv = FakeServer(state, port=port).start()
    try:
        with client(srv.url) as c:
            report = spool.deliver(c)
    finally:
        srv.stop()
    keys = [batch(n)["idempotency_key"] for n in (1, 2, 3)]
    assert report.delivered == keys and report.complete
    assert state.stored_order == keys  # in order, each stored once
    assert posted_keys(state) == [keys[0], *keys]  # the 503 was retried, nothing else re-sent
    assert spool.pending() == []


def test_stops_at_first_unavailable_batch_and_keeps_order(tmp_path: Path) -> None:
    state = State(unavailable=10)  # more 503s than the client retries
    srv = FakeServer(state).start()
    spool = Spool(tmp_path / "spool")
    try:
        with client(srv.url) as c:
            spool.enqueue(batch(1))
            spool.enqueue(batch(2))
            report = spool.deliver(c)
            assert report.remaining == 2 and report.delivered == []
            assert set(posted_keys(state)) == {batch(1)["idempotency_key"]}  # never skipped ahead
            state.unavailable = 0
            report = spool.deliver(c)
    finally:
        srv.stop()
    assert report.delivered == [batch(1)["idempotency_key"], batch(2)["idempotency_key"]]


def test_duplicate_after_lost_answer_is_deleted_not_stored_twice(tmp_path: Path, server: FakeServer) -> None:
    spool = Spool(tmp_path / "spool")
    with client(server.url) as c:
        c.post_results(batch(5))  # stored, but pretend the runner crashed before deleting its file
        spool.enqueue(batch(5))
        report = spool.deliver(c)
    assert report.duplicates == [batch(5)["idempotency_key"]] and report.delivered == []
    assert spool.pending() == []
    assert server.state.stored_order == [batch(5)["idempotency_key"]]


@pytest.mark.parametrize(("status", "error"), [(409, "idempotency_conflict"), (422, "validation_error")])
def test_rejected_batches_move_aside_and_delivery_goes_on(
    tmp_path: Path, server: FakeServer, status: int, error: str
) -> None:
    bad = batch(1)
    server.state.reject[bad["idempotency_key"]] = (status, error)
    spool = Spool(tmp_path / "spool")
    spool.enqueue(bad)
    spool.enqueue(batch(2))
    with client(server.url) as c:
        report = spool.deliver(c)
        assert report.rejected == [bad["idempotency_key"]]
        assert report.delivered == [batch(2)["idempotency_key"]]
        # never loops: a second delivery posts nothing
        before = len(server.state.requests)
        assert spool.deliver(c).rejected == []
        assert len(server.state.requests) == before
    assert [p.name for p in spool.rejected()] == ["000000000001.json"]
    err = json.loads((spool.rejected_dir / "000000000001.error.json").read_text())
    assert (err["status"], err["error"]) == (status, error)
    assert spool.pending() == []


def test_auth_error_pauses_without_losing_the_batch(tmp_path: Path, server: FakeServer) -> None:
    spool = Spool(tmp_path / "spool")
    spool.enqueue(batch(1))
    with BenchClient(server.url, "wrong-token", retries=0) as c:
        report = spool.deliver(c)
    assert report.remaining == 1 and "401" in (report.error or "")
    assert len(spool.pending()) == 1 and spool.rejected() == []


def test_sequence_keeps_increasing_after_delivery_and_restart(tmp_path: Path, server: FakeServer) -> None:
    spool = Spool(tmp_path / "spool")
    with client(server.url) as c:
        spool.submit(c, batch(1))
        spool.submit(c, batch(2))
    assert spool.pending() == []
    # a new process: the counter survives even with no file left
    again = Spool(tmp_path / "spool")
    assert again.enqueue(batch(3)).name == "000000000003.json"


def test_concurrent_enqueue_gives_unique_sequence_and_whole_files(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    paths: list[Path] = []
    lock = threading.Lock()

    def writer(base: int) -> None:
        for i in range(15):
            p = spool.enqueue(batch(base + i))
            with lock:
                paths.append(p)

    threads = [threading.Thread(target=writer, args=(k * 100,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({p.name for p in paths}) == 45
    assert [p.name for p in spool.pending()] == [f"{i:012d}.json" for i in range(1, 46)]
    assert all(json.loads(p.read_text())["idempotency_key"] for p in spool.pending())
    assert not list((tmp_path / "spool").glob(".tmp-*"))


def test_stale_temp_file_is_cleaned_and_key_required(tmp_path: Path) -> None:
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / ".tmp-abc").write_text("{half")
    spool = Spool(tmp_path / "spool")
    assert not (tmp_path / "spool" / ".tmp-abc").exists()
    with pytest.raises(ValueError, match="idempotency_key"):
        spool.enqueue({"project": "x"})
