"""Benchmark kinds: what a kind gets (`BenchmarkContext`), how it reports a failure
(`BenchmarkFailure`), and the registry that maps `kind = "..."` to its runner.

`BENCHMARK_KINDS` maps a kind name to a callable taking a `BenchmarkContext` and returning
result/failure records. The built-in kinds (`command`, `serving`, `collectives`, `local-gen`)
live in modules imported the first time a suite needs them (`KIND_MODULES`); each registers
itself with `register_kind` at import. Other packages add kinds through `register_kind` or the
`bench_runner.benchmark_kinds` entry-point group.

A kind that has something to say about its numbers beside their params (which placements a
backend measured, the reference a ratio was taken against) hands it to `ctx.report_context`; it
reaches the posted batch's `context` under `{<kind>: {<benchmark>: ...}}`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..records import FAILURE_CLASSES, FailureClass, FailureRecord, ResultRecord
from .spec import BenchmarkSpec, Suite

LogFn = Callable[[str], None]
Record = ResultRecord | FailureRecord
# A JSON object: what a kind adds to the batch's context (see BenchmarkContext.report_context).
JsonObject = dict[str, Any]


class BenchmarkFailure(Exception):
    """Raised by a benchmark kind to report a classified failure (e.g. `wrong_result`)."""

    def __init__(self, failure_class: str, message: str, log_excerpt: str | None = None) -> None:
        if failure_class not in FAILURE_CLASSES:
            raise ValueError(f"unknown failure class {failure_class!r}")
        super().__init__(message)
        self.failure_class: FailureClass = failure_class  # type: ignore[assignment]
        self.message = message
        self.log_excerpt = log_excerpt


class Cancelled(Exception):
    """The run was cancelled (lease lost, shutdown): nothing to record."""


@dataclass
class EngineHandle:
    """A running engine as benchmarks see it."""

    base_url: str | None
    port: int | None
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None  # the engine's output, when it is captured to a file

    def alive(self) -> bool:
        return self.process is None or self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()


@dataclass
class BenchmarkContext:
    """What a benchmark kind gets to run one benchmark."""

    suite: Suite
    benchmark: BenchmarkSpec
    checkout: Path
    sha: str
    scratch: Path
    env: dict[str, str]
    log: LogFn
    deadline: float  # time.monotonic() by which to be done
    stop: threading.Event  # set when the benchmark must stop (timeout, shutdown)
    engine: EngineHandle | None = None
    # What `report_context` collected: the posted batch's context[kind][benchmark].
    reported_context: JsonObject = field(default_factory=dict)

    @property
    def params(self) -> dict[str, Any]:
        return self.benchmark.params

    def report_context(self, values: Mapping[str, Any]) -> None:
        """Add JSON `values` to the context of the batch these records are posted in, under
        `{<kind>: {<benchmark>: values}}` (a later call adds or replaces keys). Kept when the
        kind returns its records; a benchmark that raises a failure posts none."""
        self.reported_context.update(values)

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def result(
        self,
        metric: str,
        value: float,
        unit: str,
        direction: str,
        *,
        samples: list[float] | None = None,
        stats: dict[str, float] | None = None,
        params: dict[str, Any] | None = None,
    ) -> ResultRecord:
        return ResultRecord(
            suite=self.suite.name,
            benchmark=self.benchmark.name,
            metric=metric,
            value=float(value),
            unit=unit,
            direction=direction,  # type: ignore[arg-type]
            params=dict(params if params is not None else self.benchmark.params),
            samples=samples,
            stats=stats,
        )

    def failure(
        self,
        failure_class: str,
        message: str,
        log_excerpt: str | None = None,
        *,
        params: dict[str, Any] | None = None,
    ) -> FailureRecord:
        return FailureRecord(
            suite=self.suite.name,
            benchmark=self.benchmark.name,
            failure_class=failure_class,  # type: ignore[arg-type]
            message=message,
            params=dict(params if params is not None else self.benchmark.params),
            log_excerpt=log_excerpt,
        )


BenchmarkKind = Callable[[BenchmarkContext], Iterable[Record]]
KindValidator = Callable[[BenchmarkSpec], None]

# kind name -> runner. Add kinds with `register_kind`; see KIND_MODULES for lazy loading.
BENCHMARK_KINDS: dict[str, BenchmarkKind] = {}
# kind name -> validator of a BenchmarkSpec (raises ValueError naming the key)
KIND_VALIDATORS: dict[str, KindValidator] = {}
# kinds provided by modules of this package, imported the first time a suite needs them; the
# module registers its kind with `register_kind(...)` when it is imported.
KIND_MODULES: dict[str, str] = {
    "command": "bench_runner.suite.command_kind",
    "serving": "bench_runner.serving.suite_kind",
    "collectives": "bench_runner.collectives.suite_kind",
    "local-gen": "bench_runner.localgen.suite_kind",
}
ENTRY_POINT_GROUP = "bench_runner.benchmark_kinds"


def register_kind(name: str, runner: BenchmarkKind, validate: KindValidator | None = None) -> None:
    """Make `kind = "<name>"` available to suites."""
    BENCHMARK_KINDS[name] = runner
    if validate is not None:
        KIND_VALIDATORS[name] = validate


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    try:
        return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    except Exception:  # broken metadata must not break the runner
        return {}


def known_kinds() -> list[str]:
    return sorted(set(BENCHMARK_KINDS) | set(KIND_MODULES) | set(_entry_points()))


def resolve_kind(name: str) -> BenchmarkKind:
    """The runner of a kind, importing its module on first use; KeyError/ImportError if unavailable."""
    if name in BENCHMARK_KINDS:
        return BENCHMARK_KINDS[name]
    if name in KIND_MODULES:
        importlib.import_module(KIND_MODULES[name])
        if name not in BENCHMARK_KINDS:
            raise ImportError(f"{KIND_MODULES[name]} does not register kind {name!r}")
        return BENCHMARK_KINDS[name]
    eps = _entry_points()
    if name in eps:
        register_kind(name, eps[name].load())
        return BENCHMARK_KINDS[name]
    raise KeyError(f"unknown benchmark kind {name!r}")
