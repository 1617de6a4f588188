"""Benchmark suites: the TOML format, its validation, and `run_suite`.

A suite says how to build the target at a commit, how to start its engine, and which
benchmarks to run against it (format: runners/README.md). `run_suite` checks out the commit,
builds, starts the engine, runs every benchmark with its timeout and returns a `SuiteOutcome`
with the results, a failure record for everything that did not produce numbers (setup,
engine_start, timeout, oom, crash, wrong_result) and the log. A failing benchmark never stops
the others, and no failure is dropped.

Benchmark kinds are plugins: `BENCHMARK_KINDS` maps a kind name to a callable taking a
`BenchmarkContext` and returning result/failure records. `command` is built in; `serving`,
`collectives` and `local-gen` are registered by their modules when first needed (see
`KIND_MODULES`), and other packages can add kinds through `register_kind` or the
`bench_runner.benchmark_kinds` entry-point group.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import json
import math
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import tomllib
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .records import FAILURE_CLASSES, FailureRecord, ResultRecord

LogFn = Callable[[str], None]

DEFAULT_BENCHMARK_TIMEOUT = 600.0
DEFAULT_BUILD_TIMEOUT = 1800.0
DEFAULT_ENGINE_START_TIMEOUT = 120.0
EXCERPT_BYTES = 4096

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_OOM_RE = re.compile(r"out of memory|outofmemoryerror|memoryerror|cannot allocate memory|oom-kill", re.I)


class SuiteError(ValueError):
    """A suite file is invalid; the message names the file and the field."""


class BenchmarkFailure(Exception):
    """Raised by a benchmark kind to report a classified failure (e.g. `wrong_result`)."""

    def __init__(self, failure_class: str, message: str, log_excerpt: str | None = None) -> None:
        if failure_class not in FAILURE_CLASSES:
            raise ValueError(f"unknown failure class {failure_class!r}")
        super().__init__(message)
        self.failure_class = failure_class
        self.message = message
        self.log_excerpt = log_excerpt


# --------------------------------------------------------------------------------------
# The format


@dataclass
class BuildSpec:
    commands: list[str | list[str]]
    timeout: float = DEFAULT_BUILD_TIMEOUT
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class EngineSpec:
    command: str | list[str]
    port: int | None = None  # None: pick a free port ({port} in command/health_url)
    health_url: str | None = None  # None: wait until the port accepts connections
    start_timeout: float = DEFAULT_ENGINE_START_TIMEOUT
    stop_timeout: float = 15.0
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class BenchmarkSpec:
    name: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    timeout: float = DEFAULT_BENCHMARK_TIMEOUT
    options: dict[str, Any] = field(default_factory=dict)  # kind-specific keys (command, env, ...)

    @property
    def params_hash(self) -> str:
        return hashlib.sha256(
            json.dumps(self.params, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()


@dataclass
class Suite:
    name: str
    benchmarks: list[BenchmarkSpec]
    description: str = ""
    repo: str | None = None  # default clone URL (a job's project overrides it)
    env: dict[str, str] = field(default_factory=dict)
    build: BuildSpec | None = None
    engine: EngineSpec | None = None
    path: Path | None = None


def _err(source: str, where: str, message: str) -> SuiteError:
    return SuiteError(f"{source}: {where}: {message}")


def _check_keys(table: Mapping[str, Any], allowed: set[str], source: str, where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        prefix = f"{where}." if where else ""
        raise _err(source, f"{prefix}{unknown[0]}", f"unknown field (allowed: {', '.join(sorted(allowed))})")


def _positive(value: Any, source: str, where: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise _err(source, where, f"must be a positive number of seconds, got {value!r}")
    return float(value)


def _command(value: Any, source: str, where: str) -> str | list[str]:
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, list) and value and all(isinstance(x, str) for x in value):
        return list(value)
    raise _err(source, where, "must be a non-empty string (run by /bin/sh) or a list of strings (argv)")


def _env(value: Any, source: str, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise _err(source, where, 'must be a table of NAME = "value"')
    bad = [k for k, v in value.items() if not isinstance(v, str | int | float) or isinstance(v, bool)]
    if bad:
        raise _err(source, f"{where}.{bad[0]}", "must be a string or number")
    return {k: str(v) for k, v in value.items()}


def _table(value: Any, source: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _err(source, where, "must be a table")
    return value


def parse_suite(data: Mapping[str, Any], source: str = "<suite>") -> Suite:
    """Validate a suite's TOML data; raise SuiteError naming the first bad field."""
    _check_keys(data, {"name", "description", "repo", "env", "build", "engine", "benchmark"}, source, "")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise _err(source, "name", "required: letters, digits, '.', '_' or '-' (at most 128)")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise _err(source, "description", "must be a string")
    repo = data.get("repo")
    if repo is not None and (not isinstance(repo, str) or not repo):
        raise _err(source, "repo", "must be a clone URL or path")
    env = _env(data.get("env"), source, "env")

    build = None
    if "build" in data:
        b = _table(data["build"], source, "build")
        _check_keys(b, {"commands", "timeout", "env"}, source, "build")
        cmds = b.get("commands")
        if not isinstance(cmds, list):
            raise _err(source, "build.commands", "required: a list of commands")
        build = BuildSpec(
            commands=[_command(c, source, f"build.commands[{i}]") for i, c in enumerate(cmds)],
            timeout=_positive(b.get("timeout", DEFAULT_BUILD_TIMEOUT), source, "build.timeout"),
            env=_env(b.get("env"), source, "build.env"),
        )

    engine = None
    if "engine" in data:
        e = _table(data["engine"], source, "engine")
        _check_keys(
            e, {"command", "port", "health_url", "start_timeout", "stop_timeout", "env"}, source, "engine"
        )
        if "command" not in e:
            raise _err(source, "engine.command", "required")
        port = e.get("port")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
            raise _err(source, "engine.port", f"must be a TCP port (1-65535), got {port!r}")
        health = e.get("health_url")
        if health is not None and (not isinstance(health, str) or not re.match(r"^https?://", health)):
            raise _err(source, "engine.health_url", f"must be an http(s) URL, got {health!r}")
        engine = EngineSpec(
            command=_command(e["command"], source, "engine.command"),
            port=port,
            health_url=health,
            start_timeout=_positive(
                e.get("start_timeout", DEFAULT_ENGINE_START_TIMEOUT), source, "engine.start_timeout"
            ),
            stop_timeout=_positive(e.get("stop_timeout", 15.0), source, "engine.stop_timeout"),
            env=_env(e.get("env"), source, "engine.env"),
        )

    raw_benchmarks = data.get("benchmark")
    if not isinstance(raw_benchmarks, list) or not raw_benchmarks:
        raise _err(source, "benchmark", "at least one [[benchmark]] is required")
    benchmarks: list[BenchmarkSpec] = []
    seen: set[tuple[str, str]] = set()
    for i, raw in enumerate(raw_benchmarks):
        where = f"benchmark[{i}]"
        bench = _table(raw, source, where)
        bname = bench.get("name")
        if not isinstance(bname, str) or not _NAME_RE.match(bname):
            raise _err(source, f"{where}.name", "required: letters, digits, '.', '_' or '-'")
        where = f"benchmark[{i}] ({bname})"
        kind = bench.get("kind")
        if not isinstance(kind, str) or not kind:
            raise _err(source, f"{where}.kind", f"required (one of: {', '.join(known_kinds())})")
        if kind not in known_kinds():
            raise _err(source, f"{where}.kind", f"unknown kind {kind!r} (known: {', '.join(known_kinds())})")
        params = bench.get("params", {})
        if not isinstance(params, dict):
            raise _err(source, f"{where}.params", "must be a table")
        timeout = _positive(bench.get("timeout", DEFAULT_BENCHMARK_TIMEOUT), source, f"{where}.timeout")
        options = {k: v for k, v in bench.items() if k not in ("name", "kind", "params", "timeout")}
        spec = BenchmarkSpec(name=bname, kind=kind, params=dict(params), timeout=timeout, options=options)
        if kind == "command":
            _check_keys(options, {"command", "env"}, source, where)
            if "command" not in options:
                raise _err(source, f"{where}.command", "required for kind 'command'")
            options["command"] = _command(options["command"], source, f"{where}.command")
            options["env"] = _env(options.get("env"), source, f"{where}.env")
        if kind in KIND_MODULES and kind not in KIND_VALIDATORS:
            with contextlib.suppress(Exception):  # imported for its validator; errors show at run time
                resolve_kind(kind)
        validator = KIND_VALIDATORS.get(kind)
        if validator is not None:
            try:
                validator(spec)
            except (ValueError, TypeError) as exc:
                raise _err(source, where, str(exc)) from exc
        key = (bname, spec.params_hash)
        if key in seen:
            raise _err(source, f"{where}.name", f"duplicate benchmark {bname!r} with the same params")
        seen.add(key)
        benchmarks.append(spec)
    return Suite(
        name=name,
        description=description,
        repo=repo,
        env=env,
        build=build,
        engine=engine,
        benchmarks=benchmarks,
    )


def load_suite(path: str | Path) -> Suite:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SuiteError(f"{path}: no such suite file") from None
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"{path}: not valid TOML: {exc}") from exc
    suite = parse_suite(data, source=str(path))
    suite.path = path
    return suite


def find_suite(suites_dir: str | Path, name: str) -> Path:
    """`<dir>/<name>.toml`, or any `*.toml` in the dir whose `name` is `name`."""
    root = Path(suites_dir)
    direct = root / f"{name}.toml"
    if direct.is_file():
        return direct
    for candidate in sorted(root.glob("*.toml")):
        with contextlib.suppress(OSError, tomllib.TOMLDecodeError):
            if tomllib.loads(candidate.read_text(encoding="utf-8")).get("name") == name:
                return candidate
    raise SuiteError(f"suite {name!r} not found in {root}")


# --------------------------------------------------------------------------------------
# The plugin hook


@dataclass
class EngineHandle:
    """A running engine as benchmarks see it."""

    base_url: str | None
    port: int | None
    process: subprocess.Popen[bytes] | None = None

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

    @property
    def params(self) -> dict[str, Any]:
        return self.benchmark.params

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

    def failure(self, failure_class: str, message: str, log_excerpt: str | None = None) -> FailureRecord:
        return FailureRecord(
            suite=self.suite.name,
            benchmark=self.benchmark.name,
            failure_class=failure_class,  # type: ignore[arg-type]
            message=message,
            params=dict(self.benchmark.params),
            log_excerpt=log_excerpt,
        )


Record = ResultRecord | FailureRecord
BenchmarkKind = Callable[[BenchmarkContext], Iterable[Record]]

# kind name -> runner. Add kinds with `register_kind`; see KIND_MODULES for lazy loading.
BENCHMARK_KINDS: dict[str, BenchmarkKind] = {}
# kind name -> validator of a BenchmarkSpec (raise ValueError naming the field)
KIND_VALIDATORS: dict[str, Callable[[BenchmarkSpec], None]] = {}
# kinds provided by other modules of this package, imported the first time a suite needs them;
# the module registers itself with `register_kind(...)` at import, or exposes
# `run_suite_benchmark(ctx: BenchmarkContext) -> Iterable[ResultRecord | FailureRecord]`.
KIND_MODULES: dict[str, str] = {
    "serving": "bench_runner.serving.suite_kind",
    "collectives": "bench_runner.collectives.suite_kind",
    "local-gen": "bench_runner.localgen_kind",
}
ENTRY_POINT_GROUP = "bench_runner.benchmark_kinds"


def register_kind(
    name: str, runner: BenchmarkKind, validate: Callable[[BenchmarkSpec], None] | None = None
) -> None:
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
        module = importlib.import_module(KIND_MODULES[name])
        if name not in BENCHMARK_KINDS:
            runner = getattr(module, "run_suite_benchmark", None)
            if not callable(runner):
                raise ImportError(
                    f"{KIND_MODULES[name]} neither registers kind {name!r} nor has run_suite_benchmark()"
                )
            register_kind(name, runner)
        return BENCHMARK_KINDS[name]
    eps = _entry_points()
    if name in eps:
        register_kind(name, eps[name].load())
        return BENCHMARK_KINDS[name]
    raise KeyError(f"unknown benchmark kind {name!r}")


# --------------------------------------------------------------------------------------
# Processes and logs


class RunLog:
    """The log of one suite run: thread-safe, kept to its last `limit` bytes, echoed if asked."""

    def __init__(self, echo: LogFn | None = None, limit: int = 4 * 1024 * 1024) -> None:
        self._lines: deque[str] = deque()
        self._size = 0
        self._limit = limit
        self._dropped = False
        self._lock = threading.Lock()
        self._echo = echo

    def __call__(self, line: str) -> None:
        line = line.rstrip("\n")
        with self._lock:
            self._lines.append(line)
            self._size += len(line) + 1
            while self._size > self._limit and len(self._lines) > 1:
                self._size -= len(self._lines.popleft()) + 1
                self._dropped = True
        if self._echo is not None:
            self._echo(line)

    def text(self) -> str:
        with self._lock:
            body = "\n".join(self._lines)
            return (
                ("[... earlier log dropped ...]\n" if self._dropped else "") + body + ("\n" if body else "")
            )


@dataclass
class CommandResult:
    returncode: int | None
    timed_out: bool
    cancelled: bool
    output_tail: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.cancelled


_PLACEHOLDER = re.compile(r"(?<!\$)\{([A-Za-z_][A-Za-z0-9_.]*)\}")


def substitute(template: str, values: Mapping[str, Any]) -> str:
    """Replace `{name}` for known names (and `{params.x}`); leave anything else (`${HOME}`) as is."""

    def repl(m: re.Match[str]) -> str:
        key = m.group(1)
        if key in values:
            return str(values[key])
        if key.startswith("params."):
            params = values.get("params") or {}
            sub = key[len("params.") :]
            if sub in params:
                return str(params[sub])
        return m.group(0)

    return _PLACEHOLDER.sub(repl, template)


def _argv(command: str | list[str], values: Mapping[str, Any]) -> list[str]:
    if isinstance(command, str):
        return ["/bin/sh", "-c", substitute(command, values)]
    return [substitute(part, values) for part in command]


def _kill_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the process group, then SIGKILL what is left after `grace` seconds."""
    if proc.poll() is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # orphans left in the group
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _pump(stream: Any, log: LogFn, tail: deque[str], prefix: str) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        tail.append(line)
        log(prefix + line)
    stream.close()


def _tail_text(lines: Iterable[str], limit: int = EXCERPT_BYTES) -> str:
    text = "\n".join(lines)
    return text[-limit:]


def run_command(
    argv: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    log: LogFn,
    cancel: threading.Event | None = None,
    prefix: str = "  | ",
    kill_grace: float = 5.0,
) -> CommandResult:
    """Run one command in its own process group, streaming its output to the log."""
    start = time.monotonic()
    log(f"$ {' '.join(argv[2:] if argv[:2] == ['/bin/sh', '-c'] else argv)}")
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        log(f"cannot start: {exc}")
        return CommandResult(127, False, False, str(exc), 0.0)
    tail: deque[str] = deque(maxlen=200)
    reader = threading.Thread(target=_pump, args=(proc.stdout, log, tail, prefix), daemon=True)
    reader.start()
    timed_out = cancelled = False
    deadline = start + timeout
    while proc.poll() is None:
        if cancel is not None and cancel.is_set():
            cancelled = True
            break
        if time.monotonic() >= deadline:
            timed_out = True
            break
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.05)
    if timed_out or cancelled:
        why = f"timed out after {timeout:.0f} s" if timed_out else "cancelled"
        log(f"{why}: stopping the process group")
    _kill_group(proc, kill_grace)
    reader.join(timeout=5)
    return CommandResult(proc.returncode, timed_out, cancelled, _tail_text(tail), time.monotonic() - start)


# --------------------------------------------------------------------------------------
# Checkout


class CheckoutError(Exception):
    pass


def _git(args: list[str], cwd: Path | None, log: LogFn, timeout: float = 900.0) -> str:
    log(f"$ git {' '.join(args)}")
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CheckoutError(f"git {args[0]}: {exc}") from exc
    if proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip()
        for line in err.splitlines()[-10:]:
            log("  | " + line)
        raise CheckoutError(f"git {args[0]} failed ({proc.returncode}): {err[-500:]}")
    return proc.stdout


def _has_commit(repo: Path, sha: str, log: LogFn) -> bool:
    try:
        _git(["cat-file", "-e", f"{sha}^{{commit}}"], repo, lambda _l: None)
        return True
    except CheckoutError:
        return False


def _repo_dirname(url: str) -> str:
    base = re.sub(r"\.git$", "", url.rstrip("/").rsplit("/", 1)[-1]) or "repo"
    return f"{re.sub(r'[^A-Za-z0-9._-]+', '-', base)}-{hashlib.sha256(url.encode()).hexdigest()[:10]}"


def checkout(
    repo_url: str | None, sha: str, cache_dir: Path, log: LogFn, *, source_dir: Path | None = None
) -> Path:
    """A working tree of the target at `sha`: the cached clone of `repo_url` under `cache_dir`
    (cloned once, fetched when the commit is missing; forced to a clean tree), or `source_dir`
    as it is when it is already at `sha` (a CI workspace), else checked out there without
    force or clean (git refuses rather than overwrite someone's local changes)."""
    if source_dir is not None:
        repo = source_dir.resolve()
        if not (repo / ".git").exists():
            log(f"{repo} is not a git checkout; using it as it is")
            return repo
    else:
        if not repo_url:
            raise CheckoutError(
                "no repository to check out (the job's project has no clone_url and the suite no repo)"
            )
        repo = cache_dir / _repo_dirname(repo_url)
        if not (repo / ".git").exists():
            if repo.exists():
                shutil.rmtree(repo)
            cache_dir.mkdir(parents=True, exist_ok=True)
            _git(["clone", "--no-checkout", repo_url, str(repo)], None, log)
    head = (
        _git(["rev-parse", "HEAD"], repo, lambda _l: None).strip() if _has_commit(repo, "HEAD", log) else ""
    )
    if head.startswith(sha.lower()) and source_dir is not None:
        return repo
    if not _has_commit(repo, sha, log):
        _git(["fetch", "--tags", "--force", "origin"], repo, log)
        if not _has_commit(repo, sha, log):
            _git(["fetch", "origin", sha], repo, log)
    if source_dir is not None:
        _git(["checkout", "--detach", sha], repo, log)
        return repo
    _git(["checkout", "--force", "--detach", sha], repo, log)
    _git(["clean", "-ffd"], repo, log)
    return repo


def commit_info(repo: Path, sha: str) -> dict[str, Any]:
    """sha, parents, author, message, committed_at of a commit (empty if it cannot be read)."""
    try:
        out = _git(["show", "-s", "--format=%H%x00%P%x00%an <%ae>%x00%cI%x00%B", sha], repo, lambda _l: None)
    except CheckoutError:
        return {}
    parts = out.split("\x00")
    if len(parts) < 5:
        return {}
    return {
        "sha": parts[0],
        "parents": parts[1].split(),
        "author": parts[2],
        "committed_at": parts[3],
        "message": parts[4].strip(),
    }


# --------------------------------------------------------------------------------------
# Engine (minimal lifecycle; `bench_runner.engine` can replace it through `engine_starter`)


class EngineStartError(Exception):
    """The engine did not become ready; `failure_class` is engine_start (or oom)."""

    def __init__(
        self, message: str, log_excerpt: str | None = None, failure_class: str = "engine_start"
    ) -> None:
        super().__init__(message)
        self.message = message
        self.log_excerpt = log_excerpt
        self.failure_class = failure_class


EngineStarter = Callable[
    [EngineSpec, Path, Mapping[str, str], LogFn, Mapping[str, Any]],
    contextlib.AbstractContextManager[EngineHandle],
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(url: str | None, port: int) -> bool:
    if url:
        try:
            return httpx.get(url, timeout=2.0).status_code < 400
        except httpx.HTTPError:
            return False
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


REFERENCE_ENGINE = "{reference_engine}"


def _engine_argv(command: str | list[str], values: Mapping[str, Any]) -> list[str]:
    """The engine's argv; `{reference_engine}` becomes `reference_engine_command(port).cmd`
    (the llama.cpp reference server with its AMX guard), shell-quoted in a string command,
    spliced in as arguments when it is a whole element of a list command."""
    text = command if isinstance(command, str) else " ".join(command)
    if REFERENCE_ENGINE not in text:
        return _argv(command, values)
    try:
        from .engine import reference_engine_command

        ref = reference_engine_command(int(values["port"])).cmd
    except Exception as exc:  # model package missing, unreadable model override, ...
        raise EngineStartError(f"reference engine unavailable: {exc}", None, "setup") from exc
    if isinstance(command, list):
        command = [x for part in command for x in (ref if part == REFERENCE_ENGINE else [part])]
    return _argv(command, {**values, "reference_engine": shlex.join(ref)})


@contextlib.contextmanager
def start_engine(
    spec: EngineSpec, cwd: Path, env: Mapping[str, str], log: LogFn, values: Mapping[str, Any]
) -> Iterator[EngineHandle]:
    """Start the engine, wait until its health URL answers (or its port accepts), stop it after."""
    port = spec.port or free_port()
    vals = {**values, "port": port}
    health = substitute(spec.health_url, vals) if spec.health_url else None
    argv = _engine_argv(spec.command, vals)
    log(f"starting engine: {' '.join(argv)}")
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env={**env, **spec.env, "PORT": str(port)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        raise EngineStartError(f"cannot start engine: {exc}") from exc
    tail: deque[str] = deque(maxlen=200)
    reader = threading.Thread(target=_pump, args=(proc.stdout, log, tail, "  engine| "), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + spec.start_timeout
        while True:
            if proc.poll() is not None:
                reader.join(timeout=2)
                excerpt = _tail_text(tail)
                raise EngineStartError(
                    f"engine exited with code {proc.returncode} before it was ready",
                    excerpt,
                    "oom" if _OOM_RE.search(excerpt) else "engine_start",
                )
            if _ready(health, port):
                break
            if time.monotonic() >= deadline:
                raise EngineStartError(
                    f"engine not ready after {spec.start_timeout:.0f} s ({health or f'port {port}'})",
                    _tail_text(tail),
                )
            time.sleep(0.2)
        log(f"engine ready on port {port}")
        yield EngineHandle(base_url=f"http://127.0.0.1:{port}", port=port, process=proc)
    finally:
        _kill_group(proc, spec.stop_timeout)
        reader.join(timeout=5)
        log(f"engine stopped (exit code {proc.returncode})")


@contextlib.contextmanager
def lifecycle_engine(
    spec: EngineSpec, cwd: Path, env: Mapping[str, str], log: LogFn, values: Mapping[str, Any]
) -> Iterator[EngineHandle]:
    """The engine through `bench_runner.engine.EngineProcess` (start, health wait, group stop,
    OOM classification). Needs a health URL; without one, `start_engine` waits for the port."""
    from .engine import EngineFailure, EngineProcess

    if spec.health_url is None:
        with start_engine(spec, cwd, env, log, values) as handle:
            yield handle
        return
    port = spec.port or free_port()
    vals = {**values, "port": port}
    scratch = Path(str(values.get("scratch") or tempfile.gettempdir()))
    argv = _engine_argv(spec.command, vals)
    log(f"starting engine: {' '.join(argv)}")
    engine = EngineProcess(
        argv,
        health_url=substitute(spec.health_url, vals),
        log_path=scratch / "engine.log",
        env={**env, **spec.env, "PORT": str(port)},
        cwd=cwd,
        startup_timeout=spec.start_timeout,
        stop_grace=spec.stop_timeout,
    )
    try:
        engine.start()
        took = engine.wait_healthy()
    except EngineFailure as exc:
        engine.stop()
        # a health URL that never answers is an engine_start failure (the contract's example)
        cls = "engine_start" if exc.failure_class == "timeout" else exc.failure_class
        raise EngineStartError(exc.message, exc.log_excerpt, cls) from exc
    log(f"engine ready on port {port} after {took:.1f} s")
    try:
        yield EngineHandle(base_url=f"http://127.0.0.1:{port}", port=port, process=engine.proc)
    finally:
        result = engine.stop()
        for line in engine.log_tail(16 * 1024).splitlines()[-100:]:
            log("  engine| " + line)
        log(f"engine stopped (exit code {result.returncode})")


def default_engine_starter() -> EngineStarter:
    """`bench_runner.engine`'s lifecycle when it is importable, else the minimal one here."""
    try:
        importlib.import_module("bench_runner.engine")
    except ImportError:
        return start_engine
    return lifecycle_engine


# --------------------------------------------------------------------------------------
# Running


@dataclass
class SuiteOutcome:
    suite: str
    results: list[ResultRecord] = field(default_factory=list)
    failures: list[FailureRecord] = field(default_factory=list)
    log: str = ""
    commit: dict[str, Any] = field(default_factory=dict)
    cancelled: bool = False

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


def _classify_exit(res: CommandResult) -> str:
    if res.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL) or _OOM_RE.search(res.output_tail):
        return "oom"
    return "crash"


def _records_from_file(path: Path, suite: Suite, spec: BenchmarkSpec) -> list[Record]:
    """Parse a `command` benchmark's results file; raise BenchmarkFailure(wrong_result) if bad."""
    if not path.is_file():
        raise BenchmarkFailure(
            "wrong_result", f"the command exited 0 but wrote no results file ({path.name})"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BenchmarkFailure("wrong_result", f"results file is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BenchmarkFailure("wrong_result", "results file must be an object with results/failures")
    records: list[Record] = []
    for key in ("results", "failures"):
        items = data.get(key, [])
        if not isinstance(items, list):
            raise BenchmarkFailure("wrong_result", f"results file: {key} must be a list")
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise BenchmarkFailure("wrong_result", f"results file: {key}[{i}] must be an object")
            merged = {
                "suite": suite.name,
                "benchmark": spec.name,
                **item,
                "params": {**spec.params, **(item.get("params") or {})},
            }
            try:
                if key == "results":
                    if merged.get("direction") not in ("higher", "lower"):
                        raise ValueError(
                            f"direction must be 'higher' or 'lower', got {merged.get('direction')!r}"
                        )
                    if isinstance(merged.get("value"), bool) or not isinstance(
                        merged.get("value"), int | float
                    ):
                        raise ValueError(f"value must be a number, got {merged.get('value')!r}")
                    merged["value"] = float(merged["value"])
                    records.append(ResultRecord(**merged))
                else:
                    if merged.get("failure_class") not in FAILURE_CLASSES:
                        raise ValueError(f"failure_class must be one of {', '.join(FAILURE_CLASSES)}")
                    records.append(FailureRecord(**merged))
            except (TypeError, ValueError) as exc:
                raise BenchmarkFailure("wrong_result", f"results file: {key}[{i}]: {exc}") from exc
    if not records:
        raise BenchmarkFailure("wrong_result", "results file has no results and no failures")
    return records


def run_command_benchmark(ctx: BenchmarkContext) -> list[Record]:
    """kind = "command": run `command`; it writes `{"results": [...], "failures": [...]}` to
    `$BENCH_RESULTS_FILE` (suite/benchmark/params default to the benchmark's)."""
    results_file = ctx.scratch / f"{ctx.benchmark.name}-{ctx.benchmark.params_hash[:8]}-results.json"
    results_file.unlink(missing_ok=True)
    env = {**ctx.env, **ctx.benchmark.options.get("env", {}), "BENCH_RESULTS_FILE": str(results_file)}
    values = {
        "sha": ctx.sha,
        "checkout": ctx.checkout,
        "results_file": results_file,
        "suite": ctx.suite.name,
        "benchmark": ctx.benchmark.name,
        "params": ctx.benchmark.params,
        "scratch": ctx.scratch,
    }
    if ctx.engine is not None:
        values.update(port=ctx.engine.port, engine_url=ctx.engine.base_url)
    res = run_command(
        _argv(ctx.benchmark.options["command"], values),
        cwd=ctx.checkout,
        env=env,
        timeout=ctx.remaining(),
        log=ctx.log,
        cancel=ctx.stop,
    )
    if res.cancelled:
        raise _Cancelled()
    if res.timed_out:
        raise BenchmarkFailure(
            "timeout", f"no result after {ctx.benchmark.timeout:.0f} s (killed)", res.output_tail
        )
    if res.returncode != 0:
        cls = _classify_exit(res)
        raise BenchmarkFailure(cls, f"command exited with code {res.returncode}", res.output_tail)
    return _records_from_file(results_file, ctx.suite, ctx.benchmark)


register_kind("command", run_command_benchmark)


class _Cancelled(Exception):
    """The run was cancelled (lease lost, shutdown): nothing to record."""


PLUGIN_STOP_GRACE = 15.0


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
            raise _Cancelled()
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
        if isinstance(exc, BenchmarkFailure | _Cancelled):
            raise exc
        cls = "oom" if isinstance(exc, MemoryError) or _OOM_RE.search(str(exc)) else "crash"
        raise BenchmarkFailure(cls, f"{type(exc).__name__}: {exc}", box.get("traceback", "")[-EXCERPT_BYTES:])
    return list(box.get("records", []))


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
    engine_starter: EngineStarter | None = None,
) -> SuiteOutcome:
    """Check out `sha`, build, start the engine, run every benchmark; never raises for a
    benchmark's failure (it becomes a FailureRecord). `log` receives progress lines."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    runlog = RunLog(echo=log)
    cancel = cancel or threading.Event()
    starter: EngineStarter = engine_starter or default_engine_starter()
    outcome = SuiteOutcome(suite=suite.name)

    def fail_all(
        failure_class: str, message: str, excerpt: str | None, specs: Iterable[BenchmarkSpec]
    ) -> None:
        for spec in specs:
            outcome.failures.append(
                FailureRecord(
                    suite=suite.name,
                    benchmark=spec.name,
                    failure_class=failure_class,  # type: ignore[arg-type]
                    message=message,
                    params=dict(spec.params),
                    log_excerpt=excerpt,
                )
            )

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
        fail_all("setup", f"checkout of {sha[:12]} failed: {exc}"[:1000], None, suite.benchmarks)
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
        if suite.build is not None:
            runlog(f"== build ({len(suite.build.commands)} commands)")
            deadline = time.monotonic() + suite.build.timeout
            for i, command in enumerate(suite.build.commands):
                res = run_command(
                    _argv(command, values),
                    cwd=tree,
                    env={**base_env, **suite.build.env},
                    timeout=max(0.1, deadline - time.monotonic()),
                    log=runlog,
                    cancel=cancel,
                )
                if res.cancelled:
                    outcome.cancelled = True
                    return finish()
                if not res.ok:
                    why = (
                        f"timed out (build budget {suite.build.timeout:.0f} s)"
                        if res.timed_out
                        else f"exited with code {res.returncode}"
                    )
                    fail_all("setup", f"build step {i + 1} {why}", res.output_tail, suite.benchmarks)
                    return finish()

        engine_cm: contextlib.AbstractContextManager[EngineHandle | None]
        if suite.engine is not None:
            runlog("== engine")
            engine_cm = starter(suite.engine, tree, base_env, runlog, values)
        else:
            engine_cm = contextlib.nullcontext(None)
        try:
            with engine_cm as engine:
                if engine is not None:
                    base_env.update(
                        BENCH_ENGINE_URL=engine.base_url or "", BENCH_ENGINE_PORT=str(engine.port or "")
                    )
                _run_benchmarks(
                    suite, outcome, tree, sha, scratch, base_env, runlog, cancel, engine, fail_all
                )
        except EngineStartError as exc:
            runlog(f"engine failed to start ({exc.failure_class}): {exc.message}")
            done = {r.benchmark for r in outcome.results} | {f.benchmark for f in outcome.failures}
            pending = [s for s in suite.benchmarks if s.name not in done]
            fail_all(exc.failure_class, exc.message, exc.log_excerpt, pending)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return finish()


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
    fail_all: Callable[[str, str, str | None, Iterable[BenchmarkSpec]], None],
) -> None:
    for index, spec in enumerate(suite.benchmarks):
        if cancel.is_set():
            outcome.cancelled = True
            return
        if engine is not None and not engine.alive():
            fail_all(
                "crash",
                f"engine exited (code {engine.returncode}) before this benchmark could run",
                None,
                suite.benchmarks[index:],
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
            try:
                kind = resolve_kind(spec.kind)
            except (ImportError, KeyError) as exc:
                raise BenchmarkFailure("setup", f"benchmark kind {spec.kind!r} unavailable: {exc}") from exc
            records = _run_plugin(kind, ctx, cancel)
            if engine is not None and not engine.alive():
                raise BenchmarkFailure(
                    "crash", f"engine exited (code {engine.returncode}) during the benchmark"
                )
            if not records:
                raise BenchmarkFailure("wrong_result", "the benchmark produced no results")
            for record in records:
                if not isinstance(record, ResultRecord | FailureRecord):
                    raise BenchmarkFailure(
                        "wrong_result", f"benchmark returned {type(record).__name__}, not a record"
                    )
            got = [r for r in records if isinstance(r, ResultRecord)]
            failed = [r for r in records if isinstance(r, FailureRecord)]
            outcome.results.extend(got)
            outcome.failures.extend(failed)
            took = time.monotonic() - started
            runlog(f"   {spec.name}: {len(got)} results, {len(failed)} failures in {took:.1f} s")
        except _Cancelled:
            outcome.cancelled = True
            runlog(f"   {spec.name}: cancelled")
            return
        except BenchmarkFailure as exc:
            runlog(f"   {spec.name}: FAILED ({exc.failure_class}): {exc.message}")
            outcome.failures.append(
                FailureRecord(
                    suite=suite.name,
                    benchmark=spec.name,
                    failure_class=exc.failure_class,  # type: ignore[arg-type]
                    message=exc.message[:2000],
                    params=dict(spec.params),
                    log_excerpt=exc.log_excerpt,
                )
            )
