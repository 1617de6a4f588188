"""A collectives run (ours or an imported nccl-tests log) as ResultRecords and FailureRecords.

The conversion is shared with the nccl-tests importer, so it lives in `bench_formats.collectives`;
the collectives kinds import it from here.
"""

from bench_formats.collectives import SUITE, base_params, run_to_records

__all__ = ["SUITE", "base_params", "run_to_records"]
