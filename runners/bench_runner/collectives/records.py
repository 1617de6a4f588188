"""A collectives run (ours or an imported nccl-tests log) as ResultRecords and FailureRecords.

The conversion is shared with the nccl-tests importer, so it lives in `bench_formats.collectives`;
the collectives kinds import it from here. `run_context` is the runner's own: which placements
its backend measured, and why any was not (torch has no out-of-place all_reduce or broadcast).
"""

from typing import Any

from bench_formats.collectives import SUITE, CollectiveRun, base_params, run_to_records

__all__ = ["SUITE", "base_params", "run_context", "run_to_records"]


def run_context(run: CollectiveRun) -> dict[str, Any]:
    """What a reader of the numbers needs besides the params: which placements were measured."""
    measured = sorted({name for row in run.rows for name, _ in row.placements()})
    context: dict[str, Any] = {"placements": measured}
    if run.not_measured:
        context["not_measured"] = dict(run.not_measured)
    return context
