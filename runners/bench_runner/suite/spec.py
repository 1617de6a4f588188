"""A suite as the runner uses it, once its file has been read and validated (`format`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_BENCHMARK_TIMEOUT = 600.0
DEFAULT_BUILD_TIMEOUT = 1800.0
DEFAULT_ENGINE_START_TIMEOUT = 120.0
DEFAULT_ENGINE_STOP_TIMEOUT = 15.0


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
    stop_timeout: float = DEFAULT_ENGINE_STOP_TIMEOUT
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
