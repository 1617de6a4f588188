"""The README's demo command loads its history through the public API and answers queries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from bench_server.kit.db import Database
from bench_server.models import Failure, IngestBatch, Result
from benchmarks._live import free_port

BIN = Path(sys.executable).parent / "bench-server"


def test_demo_loads_history_and_is_idempotent(tmp_path: Path) -> None:
    cmd = [str(BIN), "demo", "--no-serve", "--workdir", str(tmp_path), "--port", str(free_port())]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert first.returncode == 0, first.stderr
    assert "90 new batches" in first.stderr
    assert "output_throughput -1" in first.stderr  # the planted regression shows as a drop of over 10%

    db = Database.from_url(f"sqlite:///{tmp_path / 'bench.db'}")
    with db.read_only() as s:
        counts = (
            s.scalar(select(func.count()).select_from(IngestBatch)),
            s.scalar(select(func.count()).select_from(Result)),
            s.scalar(select(func.count()).select_from(Failure)),
        )
    assert counts == (90, 360, 1)

    cmd[-1] = str(free_port())
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    assert "0 new batches, 90 already there" in again.stderr
    with db.read_only() as s:
        assert s.scalar(select(func.count()).select_from(Result)) == 360
    db.engine.dispose()
