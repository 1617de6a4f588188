"""How `launch` reads the ranks' exit statuses, with plain processes standing in for ranks.

As nccl-tests, a rank whose check failed exits 7: it has finished, and rank 0's JSON line says
which sizes were wrong. Any other non-zero status is a rank that did not finish.
"""

from __future__ import annotations

import json
import sys
import time

import pytest
from bench_runner.collectives.core import CollectiveRun, PlacementResult, SizeRow
from bench_runner.collectives.launcher import HostSpec, LaunchError, RankCommand, launch, read_runs
from bench_runner.collectives.worker import JSON_MARKER, WRONG_RESULT_EXIT

HOST = HostSpec("localhost", "127.0.0.1", 2)


def _json_line(wrong: int) -> str:
    row = SizeRow(64, 16, "float", "sum", -1, None, PlacementResult(10.0, 0.0064, 0.0064, wrong))
    run = CollectiveRun("all_reduce", 2, "float", rows=[row], out_of_bounds=2 if wrong else 0)
    payload: str = json.dumps({"runs": [run.to_json()]})
    return f"{JSON_MARKER} {payload}"


def _rank(rank: int, code: str) -> RankCommand:
    return RankCommand(rank, HOST, [sys.executable, "-c", code])


def _rank0(wrong: int, status: int, sleep_s: float = 0.0) -> RankCommand:
    code = (
        f"import sys, time; time.sleep({sleep_s}); print('# rows'); print({_json_line(wrong)!r}); "
        f"sys.exit({status})"
    )
    return _rank(0, code)


def test_a_rank_that_exits_7_has_finished_and_the_json_says_what_was_wrong() -> None:
    # rank 1 exits 7 at once; rank 0 is still at work and must not be stopped for it
    cmds = [_rank0(3, WRONG_RESULT_EXIT, sleep_s=1.0), _rank(1, f"raise SystemExit({WRONG_RESULT_EXIT})")]
    result = launch(cmds, timeout=60)
    assert result.returncodes == [WRONG_RESULT_EXIT] * 2 and result.wrong_result
    text, runs = read_runs(result)
    assert text == "# rows\n"
    [run] = runs
    assert run.total_wrong() == 3 and run.out_of_bounds == 2


def test_status_7_is_never_taken_for_a_good_run() -> None:
    cmds = [_rank0(0, WRONG_RESULT_EXIT), _rank(1, f"raise SystemExit({WRONG_RESULT_EXIT})")]
    result = launch(cmds, timeout=60)
    with pytest.raises(LaunchError) as info:
        read_runs(result)
    assert info.value.failure_class == "wrong_result"
    assert "exited 7" in str(info.value) and JSON_MARKER in info.value.log_excerpt


def test_a_clean_run_exits_0() -> None:
    result = launch([_rank0(0, 0), _rank(1, "pass")], timeout=60)
    assert result.returncodes == [0, 0] and not result.wrong_result
    _, [run] = read_runs(result)
    assert run.total_wrong() == 0


def test_any_other_status_is_a_crash_that_stops_every_rank() -> None:
    started = time.monotonic()
    cmds = [_rank0(0, 0, sleep_s=60.0), _rank(1, "import sys; print('boom', file=sys.stderr); sys.exit(3)")]
    with pytest.raises(LaunchError) as info:
        launch(cmds, timeout=60)
    assert time.monotonic() - started < 30
    assert info.value.failure_class == "crash"
    assert "rank 1 failed" in str(info.value) and "boom" in info.value.log_excerpt
