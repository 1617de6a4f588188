"""The records a runner posts to the results store (`POST /api/v1/results`).

They are defined in `bench_formats.records`, so the server's file imports and the runner's own
benchmarks produce the same types; runner code imports them from here.
"""

from bench_formats.records import FAILURE_CLASSES, Direction, FailureClass, FailureRecord, ResultRecord

__all__ = ["FAILURE_CLASSES", "Direction", "FailureClass", "FailureRecord", "ResultRecord"]
