"""`run_suite`: check out the commit, build, start the engine, run every benchmark.

Each benchmark runs with its timeout; whatever does not produce numbers becomes a failure
record (setup, engine_start, timeout, oom, crash, wrong_result), a failing benchmark never
stops the others, and no failure is dropped.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
import time
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine import EngineFailure
from ..process import EXCERPT_BYTES, classify_exit
from ..records import FailureRecord, ResultRecord
from .checkout import CheckoutError, checkout, commit_info
from .commands import RunLog, command_argv, run_command
from .engine import EngineStarter, start_suite_engine
from .registry import (
    BenchmarkContext,
    BenchmarkFailure,
    BenchmarkKind,
    Cancelled,
    EngineHandle,
    JsonObject,
    LogFn,
    Record,
    resolve_kind,
)
from .spec import BenchmarkSpec, Suite

# How long past its deadline a kind that ignores ctx.stop is waited for.
PLUGIN_STOP_GRACE = 15.0


@dataclass
class SuiteOutcome:
    suite: str
    results: list[ResultRecord] = field(default_factory=list)
    failures: list[FailureRecord] = field(default_factory=list)
    log: str = ""
    commit: dict[str, Any] = field(default_factory=dict)
    cancelled: bool = False
    # kind -> benchmark -> what the kind reported (`BenchmarkContext.report_context`): for the
    # posted batch's context
    context: dict[str, dict[str, JsonObject]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.cancelled

    def job_state(self) -> tuple[str, str | None, str | None]:
        """(state, failure_class, message) for `POST /jobs/{id}/finish`."""
        if self.ok:
            return "succeeded", None, f"{len(self.results)} results"
        if not self.failures:
            return "failed", "runner_lost", "cancelled before the suite finished"
        first = self.failures[0]
        more = f" (+{len(self.failures) - 1} more failures)" if len(self.failures) > 1 else ""
        return "failed", first.failure_class, f"{first.benchmark or self.suite}: {first.message}"[:900] + more

    def fail(
        self, specs: Iterable[BenchmarkSpec], failure_class: str, message: str, excerpt: str | None = None
    ) -> None:
        """A failure record of `failure_class` for each of `specs`."""
        for spec in specs:
            self.failures.append(
                FailureRecord(
                    suite=self.suite,
                    benchmark=spec.name,
                    failure_class=failure_class,  # type: ignore[arg-type]
                    message=message,
                    params=dict(spec.params),
                    log_excerpt=excerpt,
                )
            )

    def pending(self, suite: Suite) -> list[BenchmarkSpec]:
        """The benchmarks of `suite` that have no record yet."""
        done = {r.benchmark for r in self.results} | {f.benchmark for f in self.failures}
        return [s for s in suite.benchmarks if s.name not in done]


def run_suite(
    suite: Suite,
    workdir: str | Path,
    sha: str,
    *,
    repo_url: str | None = None,
    source_dir: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    log: LogFn | None = None,
    cancel: threading.Event | None = None,
    engine_starter: EngineStarter = start_suite_engine,
) -> SuiteOutcome:
    """Check out `sha`, build, start the engine, run every benchmark; never raises for a
    benchmark's failure (it becomes a FailureRecord). `log` receives progress lines."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    runlog = RunLog(echo=log)
    cancel = cancel or threading.Event()
    outcome = SuiteOutcome(suite=suite.name)

    def finish() -> SuiteOutcome:
        runlog(
            f"== {suite.name}: {len(outcome.results)} results, {len(outcome.failures)} failures"
            + (" (cancelled)" if outcome.cancelled else "")
        )
        outcome.log = runlog.text()
        return outcome

    runlog(f"== suite {suite.name} at {sha}")
    try:
        tree = checkout(
            repo_url or suite.repo,
            sha,
            workdir / "repos",
            runlog,
            source_dir=Path(source_dir) if source_dir is not None else None,
        )
    except CheckoutError as exc:
        runlog(f"checkout failed: {exc}")
        outcome.fail(suite.benchmarks, "setup", f"checkout of {sha[:12]} failed: {exc}"[:1000])
        return finish()
    outcome.commit = commit_info(tree, sha) if (tree / ".git").exists() else {}

    scratch = Path(tempfile.mkdtemp(prefix=f"{suite.name}-{sha[:12]}-", dir=workdir))
    base_env = {
        **os.environ,
        **(env or {}),
        **suite.env,
        "BENCH_SHA": sha,
        "BENCH_SUITE": suite.name,
        "BENCH_CHECKOUT": str(tree),
        "BENCH_SCRATCH": str(scratch),
    }
    values: dict[str, Any] = {
        "sha": sha,
        "checkout": tree,
        "workdir": workdir,
        "scratch": scratch,
        "suite": suite.name,
    }
    try:
        if suite.build is not None and not _build(suite, tree, base_env, values, runlog, cancel, outcome):
            return finish()
        engine_cm: contextlib.AbstractContextManager[EngineHandle | None]
        if suite.engine is not None:
            runlog("== engine")
            engine_cm = engine_starter(suite.engine, tree, base_env, runlog, values)
        else:
            engine_cm = contextlib.nullcontext(None)
        try:
            with engine_cm as engine:
                if engine is not None:
                    base_env.update(
                        BENCH_ENGINE_URL=engine.base_url or "", BENCH_ENGINE_PORT=str(engine.port or "")
                    )
                _run_benchmarks(suite, outcome, tree, sha, scratch, base_env, runlog, cancel, engine)
        except EngineFailure as exc:
            runlog(f"engine failed to start ({exc.failure_class}): {exc.message}")
            outcome.fail(outcome.pending(suite), exc.failure_class, exc.message, exc.log_excerpt)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return finish()


def _build(
    suite: Suite,
    tree: Path,
    env: dict[str, str],
    values: dict[str, Any],
    runlog: RunLog,
    cancel: threading.Event,
    outcome: SuiteOutcome,
) -> bool:
    """Run the build commands; False (with the outcome updated) when the suite cannot go on."""
    assert suite.build is not None
    runlog(f"== build ({len(suite.build.commands)} commands)")
    deadline = time.monotonic() + suite.build.timeout
    for i, command in enumerate(suite.build.commands):
        res = run_command(
            command_argv(command, values),
            cwd=tree,
            env={**env, **suite.build.env},
            timeout=max(0.1, deadline - time.monotonic()),
            log=runlog,
            cancel=cancel,
        )
        if res.cancelled:
            outcome.cancelled = True
            return False
        if not res.ok:
            why = (
                f"timed out (build budget {suite.build.timeout:.0f} s)"
                if res.timed_out
                else f"exited with code {res.returncode}"
            )
            outcome.fail(suite.benchmarks, "setup", f"build step {i + 1} {why}", res.output_tail)
            return False
    return True


def _run_benchmarks(
    suite: Suite,
    outcome: SuiteOutcome,
    tree: Path,
    sha: str,
    scratch: Path,
    env: dict[str, str],
    runlog: RunLog,
    cancel: threading.Event,
    engine: EngineHandle | None,
) -> None:
    for index, spec in enumerate(suite.benchmarks):
        if cancel.is_set():
            outcome.cancelled = True
            return
        if engine is not None and not engine.alive():
            outcome.fail(
                suite.benchmarks[index:],
                "crash",
                f"engine exited (code {engine.returncode}) before this benchmark could run",
            )
            return
        runlog(f"== benchmark {spec.name} ({spec.kind}, timeout {spec.timeout:.0f} s) params={spec.params}")
        ctx = BenchmarkContext(
            suite=suite,
            benchmark=spec,
            checkout=tree,
            sha=sha,
            scratch=scratch,
            env={
                **env,
                "BENCH_BENCHMARK": spec.name,
                "BENCH_PARAMS": json.dumps(spec.params, sort_keys=True),
            },
            log=runlog,
            deadline=time.monotonic() + spec.timeout,
            stop=threading.Event(),
            engine=engine,
        )
        started = time.monotonic()
        try:
            records = _run_benchmark(ctx, cancel)
        except Cancelled:
            outcome.cancelled = True
            runlog(f"   {spec.name}: cancelled")
            return
        except BenchmarkFailure as exc:
            runlog(f"   {spec.name}: FAILED ({exc.failure_class}): {exc.message}")
            outcome.fail([spec], exc.failure_class, exc.message[:2000], exc.log_excerpt)
            continue
        got = [r for r in records if isinstance(r, ResultRecord)]
        failed = [r for r in records if isinstance(r, FailureRecord)]
        outcome.results.extend(got)
        outcome.failures.extend(failed)
        if ctx.reported_context:
            outcome.context.setdefault(spec.kind, {})[spec.name] = dict(ctx.reported_context)
        took = time.monotonic() - started
        runlog(f"   {spec.name}: {len(got)} results, {len(failed)} failures in {took:.1f} s")


def _run_benchmark(ctx: BenchmarkContext, cancel: threading.Event) -> list[Record]:
    """The records of one benchmark; BenchmarkFailure for anything that is not a good list."""
    spec, engine = ctx.benchmark, ctx.engine
    try:
        kind = resolve_kind(spec.kind)
    except (ImportError, KeyError) as exc:
        raise BenchmarkFailure("setup", f"benchmark kind {spec.kind!r} unavailable: {exc}") from exc
    records = _run_plugin(kind, ctx, cancel)
    if engine is not None and not engine.alive():
        raise BenchmarkFailure("crash", f"engine exited (code {engine.returncode}) during the benchmark")
    if not records:
        raise BenchmarkFailure("wrong_result", "the benchmark produced no results")
    for record in records:
        if not isinstance(record, ResultRecord | FailureRecord):
            raise BenchmarkFailure(
                "wrong_result", f"benchmark returned {type(record).__name__}, not a record"
            )
    return records


def _run_plugin(kind: BenchmarkKind, ctx: BenchmarkContext, cancel: threading.Event) -> list[Record]:
    """Run a kind in a thread so its timeout holds even if it ignores ctx.deadline/ctx.stop
    (a kind that honours them reports its own timeout first, within PLUGIN_STOP_GRACE)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["records"] = list(kind(ctx))
        except BaseException as exc:  # reported to the caller below, whatever it is
            box["error"] = exc
            box["traceback"] = traceback.format_exc()

    worker = threading.Thread(target=target, name=f"bench-{ctx.benchmark.name}", daemon=True)
    worker.start()
    while worker.is_alive():
        if cancel.is_set():
            ctx.stop.set()
            worker.join(timeout=10)
            raise Cancelled()
        if time.monotonic() >= ctx.deadline + PLUGIN_STOP_GRACE:
            ctx.stop.set()
            worker.join(timeout=10)
            if worker.is_alive():
                ctx.log(
                    f"warning: benchmark {ctx.benchmark.name} ignored its stop signal; abandoning its thread"
                )
            raise BenchmarkFailure("timeout", f"no result after {ctx.benchmark.timeout:.0f} s")
        worker.join(timeout=0.05)
    if "error" in box:
        exc = box["error"]
        if isinstance(exc, BenchmarkFailure | Cancelled):
            raise exc
        what = f"{type(exc).__name__}: {exc}"
        raise BenchmarkFailure(classify_exit(None, what), what, box["traceback"][-EXCERPT_BYTES:])
    return list(box["records"])
