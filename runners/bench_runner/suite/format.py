"""The suite file: its TOML tables as pydantic models, and `load_suite` / `parse_suite`.

The format is described in runners/README.md. Every error names the file, the table and the
key, e.g. `suites/x.toml: [benchmark.serve] unknown key 'concurency' (did you mean
'concurrency'?)` or `suites/x.toml: [engine] port: must be a TCP port (1-65535), got 70000`;
keys of the top-level table have no table in front.
"""

from __future__ import annotations

import contextlib
import re
import tomllib
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field, field_validator

from .options import Command, Env, HttpUrl, OptionError, Seconds, Table, validate_table
from .registry import KIND_MODULES, KIND_VALIDATORS, known_kinds, resolve_kind
from .spec import (
    DEFAULT_BENCHMARK_TIMEOUT,
    DEFAULT_BUILD_TIMEOUT,
    DEFAULT_ENGINE_START_TIMEOUT,
    DEFAULT_ENGINE_STOP_TIMEOUT,
    BenchmarkSpec,
    BuildSpec,
    EngineSpec,
    Suite,
)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class SuiteError(ValueError):
    """A suite file is invalid; the message names the file, the table and the key."""


def _name(value: Any) -> Any:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise ValueError(f"must be letters, digits, '.', '_' or '-' (at most 128), got {value!r}")
    return value


def _tcp_port(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ValueError(f"must be a TCP port (1-65535), got {value!r}")
    return value


Name = Annotated[str, BeforeValidator(_name)]
TcpPort = Annotated[int, BeforeValidator(_tcp_port)]


class BuildTable(Table):
    commands: list[Command]
    timeout: Seconds = DEFAULT_BUILD_TIMEOUT
    env: Env = {}


class EngineTable(Table):
    command: Command
    port: TcpPort | None = None
    health_url: HttpUrl | None = None
    start_timeout: Seconds = DEFAULT_ENGINE_START_TIMEOUT
    stop_timeout: Seconds = DEFAULT_ENGINE_STOP_TIMEOUT
    env: Env = {}


class SuiteTable(Table):
    """The top-level table; each `[[benchmark]]` is validated on its own (`BenchmarkTable`)."""

    name: Name
    description: str = ""
    repo: str | None = Field(None, min_length=1)
    env: Env = {}
    build: BuildTable | None = None
    engine: EngineTable | None = None
    benchmark: list[dict[str, Any]] = Field([], validate_default=True)

    @field_validator("benchmark", mode="before")
    @classmethod
    def _at_least_one(cls, value: Any) -> Any:
        if not isinstance(value, list) or not value:
            raise ValueError("at least one [[benchmark]] is required")
        return value


class BenchmarkTable(Table):
    """The common keys of a `[[benchmark]]`; the other keys are the kind's (its validator
    checks them)."""

    model_config = ConfigDict(extra="allow")

    name: Name
    kind: str = Field("", validate_default=True)
    params: dict[str, Any] = {}
    timeout: Seconds = DEFAULT_BENCHMARK_TIMEOUT

    @field_validator("kind", mode="before")
    @classmethod
    def _known(cls, value: Any) -> Any:
        kinds = ", ".join(known_kinds())
        if value == "":
            raise ValueError(f"required (one of: {kinds})")
        if value not in known_kinds():
            raise ValueError(f"unknown kind {value!r} (known: {kinds})")
        return value


def _top_level_error(source: str, error: OptionError) -> SuiteError:
    """`[build] commands[0]: ...` for keys inside a table, `name: ...` for top-level keys."""
    if error.path and error.path[0] in ("build", "engine") and len(error.path) > 1:
        (table,), inner = error.split()
        return SuiteError(f"{source}: [{table}] {inner}")
    return SuiteError(f"{source}: {error}")


def _benchmark_labels(raw: list[dict[str, Any]]) -> list[str]:
    """How errors name each `[[benchmark]]`: `benchmark.serve`, with its position when its
    name is not unique in the file (`benchmark.serve #2`), or `benchmark #3` without a name."""
    names = [b.get("name") if isinstance(b.get("name"), str) and b.get("name") else None for b in raw]
    counts = Counter(names)
    labels = []
    for i, name in enumerate(names):
        if name is None:
            labels.append(f"benchmark #{i + 1}")
        else:
            labels.append(f"benchmark.{name}" + (f" #{i + 1}" if counts[name] > 1 else ""))
    return labels


def _benchmark(raw: dict[str, Any]) -> BenchmarkSpec:
    table = validate_table(BenchmarkTable, raw)
    spec = BenchmarkSpec(
        name=table.name,
        kind=table.kind,
        params=dict(table.params),
        timeout=table.timeout,
        options=dict(table.model_extra or {}),
    )
    if spec.kind in KIND_MODULES and spec.kind not in KIND_VALIDATORS:
        with contextlib.suppress(Exception):  # imported for its validator; errors show at run time
            resolve_kind(spec.kind)
    validator = KIND_VALIDATORS.get(spec.kind)
    if validator is not None:
        validator(spec)
    return spec


def parse_suite(data: Mapping[str, Any], source: str = "<suite>") -> Suite:
    """Validate a suite's TOML data; raise SuiteError naming the first bad key."""
    try:
        table = validate_table(SuiteTable, data)
    except OptionError as exc:
        raise _top_level_error(source, exc) from exc
    benchmarks: list[BenchmarkSpec] = []
    seen: set[tuple[str, str]] = set()
    for raw, label in zip(table.benchmark, _benchmark_labels(table.benchmark), strict=True):
        try:
            spec = _benchmark(raw)
        except (ValueError, TypeError) as exc:  # a kind's validator may raise either
            raise SuiteError(f"{source}: [{label}] {exc}") from exc
        key = (spec.name, spec.params_hash)
        if key in seen:
            raise SuiteError(f"{source}: [{label}] duplicate benchmark {spec.name!r} with the same params")
        seen.add(key)
        benchmarks.append(spec)
    return Suite(
        name=table.name,
        description=table.description,
        repo=table.repo,
        env=dict(table.env),
        build=None if table.build is None else _build(table.build),
        engine=None if table.engine is None else _engine(table.engine),
        benchmarks=benchmarks,
    )


def _build(table: BuildTable) -> BuildSpec:
    return BuildSpec(commands=list(table.commands), timeout=table.timeout, env=dict(table.env))


def _engine(table: EngineTable) -> EngineSpec:
    return EngineSpec(
        command=table.command,
        port=table.port,
        health_url=table.health_url,
        start_timeout=table.start_timeout,
        stop_timeout=table.stop_timeout,
        env=dict(table.env),
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
