"""The torch backend times the collective alone: with every tensor copy made slow, no timed
operation gets slower (a one-rank gloo group in this process)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from bench_runner.collectives.core import COLLECTIVES, plan_size
from bench_runner.collectives.harness import SweepConfig, run_sweep, time_op

torch = pytest.importorskip("torch")

from bench_runner.collectives.torch_backend import TorchDistBackend  # noqa: E402

COPY_DELAY_S = 0.02


@pytest.fixture(scope="module")
def backend() -> Iterator[TorchDistBackend]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp = pytest.MonkeyPatch()
    mp.setenv("MASTER_ADDR", "127.0.0.1")
    mp.setenv("MASTER_PORT", str(port))
    b = TorchDistBackend("gloo", rank=0, world_size=1, local_rank=0, timeout_s=60)
    try:
        yield b
    finally:
        b.close()
        mp.undo()


@pytest.fixture
def slow_copies(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    copies: list[int] = []
    real_copy = torch.Tensor.copy_

    def slow_copy(self: Any, *args: Any, **kwargs: Any) -> Any:
        copies.append(1)
        time.sleep(COPY_DELAY_S)
        return real_copy(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "copy_", slow_copy)
    return copies


@pytest.mark.parametrize("collective", sorted(COLLECTIVES))
def test_no_copy_inside_the_timed_loop(
    backend: TorchDistBackend, slow_copies: list[int], collective: str
) -> None:
    plan = plan_size(collective, 4096, "float", 1)
    for placement in ("out_of_place", "in_place"):
        if placement in backend.unsupported_placements(collective):
            with pytest.raises(ValueError, match="no out-of-place form"):
                backend.prepare(collective, "float", plan.send_elems, plan.recv_elems, in_place=False)
            continue
        op = backend.prepare(
            collective, "float", plan.send_elems, plan.recv_elems, in_place=placement == "in_place"
        )
        op.fill(False)
        before = len(slow_copies)
        seconds = time_op(backend, op, iters=5, warmup_iters=1)
        assert len(slow_copies) == before, f"{collective} {placement} copies inside the timed loop"
        assert seconds < COPY_DELAY_S / 2
        op.fill(False)
        op.run()
        assert op.count_wrong() in (0, None)


def test_in_place_only_collectives_are_reported_as_such(backend: TorchDistBackend) -> None:
    for collective in ("all_reduce", "broadcast"):
        run = run_sweep(
            backend, SweepConfig(collective, min_bytes=64, max_bytes=1024, step_factor=4, iters=2)
        )
        assert run.not_measured == {
            "out_of_place": f"torch.distributed.{collective} has no out-of-place form"
        }
        assert all(row.out_of_place is None and row.in_place is not None for row in run.rows)
        assert run.total_wrong() == 0 and run.out_of_bounds == 0
    for collective in ("all_gather", "reduce_scatter", "alltoall"):
        assert backend.unsupported_placements(collective) == {}
