"""A benchmark-kind module loaded lazily through KIND_MODULES (it exposes run_suite_benchmark)."""

from __future__ import annotations

from bench_runner.records import ResultRecord
from bench_runner.suite import BenchmarkContext


def run_suite_benchmark(ctx: BenchmarkContext) -> list[ResultRecord]:
    return [ctx.result("lazy_metric", 1.0, "count", "higher")]
