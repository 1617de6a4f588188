"""A benchmark-kind module loaded lazily through KIND_MODULES: it registers its kind at import."""

from __future__ import annotations

from bench_runner.records import ResultRecord
from bench_runner.suite import BenchmarkContext, register_kind


def run_lazy_kind(ctx: BenchmarkContext) -> list[ResultRecord]:
    return [ctx.result("lazy_metric", 1.0, "count", "higher")]


register_kind("lazy-kind", run_lazy_kind)
