"""Benchmark suites: the TOML format, its validation, and `run_suite`.

A suite says how to build the target at a commit, how to start its engine, and which
benchmarks to run against it (format: runners/README.md). `run_suite` checks out the commit,
builds, starts the engine, runs every benchmark with its timeout and returns a `SuiteOutcome`
with the results, a failure record for everything that did not produce numbers, and the log.

Modules, one per seam:

* `spec`: the parsed suite (`Suite`, `BuildSpec`, `EngineSpec`, `BenchmarkSpec`);
* `format`: the file's tables as pydantic models, `load_suite`, `parse_suite`, `find_suite`;
* `options`: the validation shared by the file and the kinds' settings, and its messages;
* `registry`: the kinds (`register_kind`, `BenchmarkContext`, `BenchmarkFailure`), and the
  context a kind adds to the posted batch (`BenchmarkContext.report_context`);
* `commands`: placeholders, the run log and `run_command`;
* `checkout`: the target repository at a commit;
* `engine`: the suite's `[engine]`, through `bench_runner.engine.EngineProcess`;
* `run`: `run_suite`;
* `command_kind`: the built-in `kind = "command"`;
* `kit`: what the built-in kinds that talk to an engine share.
"""

from ..engine import EngineFailure
from .checkout import CheckoutError, checkout, commit_info
from .commands import CommandResult, RunLog, command_argv, run_command, substitute
from .engine import EngineStarter, engine_argv, start_suite_engine
from .format import SuiteError, find_suite, load_suite, parse_suite
from .registry import (
    BENCHMARK_KINDS,
    ENTRY_POINT_GROUP,
    KIND_MODULES,
    KIND_VALIDATORS,
    BenchmarkContext,
    BenchmarkFailure,
    BenchmarkKind,
    EngineHandle,
    JsonObject,
    LogFn,
    Record,
    known_kinds,
    register_kind,
    resolve_kind,
)
from .run import SuiteOutcome, run_suite
from .spec import BenchmarkSpec, BuildSpec, EngineSpec, Suite

__all__ = [
    "BENCHMARK_KINDS",
    "ENTRY_POINT_GROUP",
    "KIND_MODULES",
    "KIND_VALIDATORS",
    "BenchmarkContext",
    "BenchmarkFailure",
    "BenchmarkKind",
    "BenchmarkSpec",
    "BuildSpec",
    "CheckoutError",
    "CommandResult",
    "EngineFailure",
    "EngineHandle",
    "EngineSpec",
    "EngineStarter",
    "JsonObject",
    "LogFn",
    "Record",
    "RunLog",
    "Suite",
    "SuiteError",
    "SuiteOutcome",
    "checkout",
    "command_argv",
    "commit_info",
    "engine_argv",
    "find_suite",
    "known_kinds",
    "load_suite",
    "parse_suite",
    "register_kind",
    "resolve_kind",
    "run_command",
    "run_suite",
    "start_suite_engine",
    "substitute",
]
