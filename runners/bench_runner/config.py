"""The runner's config file: server URL, runner token, name, hardware class, local paths.

Location: `$BENCH_RUNNER_CONFIG` if set, else `$XDG_CONFIG_HOME/bench-runner/config.toml`
(`~/.config/bench-runner/config.toml`). TOML, or JSON if the file name ends in `.json`.
The file holds a secret (the runner token), so it is always written with mode 0600 (and its
directory, when created, 0700), atomically: temp file + fsync + rename.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from .files import atomic_write

ENV_CONFIG = "BENCH_RUNNER_CONFIG"


class ConfigError(Exception):
    """The config file is missing, unreadable or has a wrong field."""


def default_config_path() -> Path:
    env = os.environ.get(ENV_CONFIG)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "bench-runner" / "config.toml"


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "bench-runner"


@dataclass
class RunnerConfig:
    server_url: str
    token: str
    name: str
    hardware_class: str
    runner_id: int | None = None
    labels: list[str] = field(default_factory=list)
    suites_dir: str | None = None  # where `bench-runner agent` finds suites by name
    work_dir: str | None = None  # checkout cache and scratch space
    spool_dir: str | None = None  # undelivered results batches
    cluster_file: str | None = None  # members/links file if this runner stands for a cluster

    def state_dir(self) -> Path:
        return default_state_dir()

    def resolved_work_dir(self) -> Path:
        return Path(self.work_dir).expanduser() if self.work_dir else self.state_dir() / "work"

    def resolved_spool_dir(self) -> Path:
        return Path(self.spool_dir).expanduser() if self.spool_dir else self.state_dir() / "spool"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> RunnerConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown field(s): {', '.join(unknown)}")
        for name in ("server_url", "token", "name", "hardware_class"):
            if not isinstance(data.get(name), str) or not data[name]:
                raise ConfigError(f"{source}: {name}: required (a non-empty string)")
        if data.get("runner_id") is not None and not isinstance(data["runner_id"], int):
            raise ConfigError(f"{source}: runner_id: must be an integer")
        labels = data.get("labels", [])
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise ConfigError(f"{source}: labels: must be a list of strings")
        for name in ("suites_dir", "work_dir", "spool_dir", "cluster_file"):
            if data.get(name) is not None and not isinstance(data[name], str):
                raise ConfigError(f"{source}: {name}: must be a string path")
        return cls(**data)


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by the owner only (0600), atomically."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(path, text.encode("utf-8"), mode=0o600)


def save_config(config: RunnerConfig, path: str | Path | None = None) -> Path:
    target = Path(path).expanduser() if path else default_config_path()
    data = config.to_dict()
    text = json.dumps(data, indent=2) + "\n" if target.suffix == ".json" else tomli_w.dumps(data)
    write_private(target, text)
    return target


def load_config(path: str | Path | None = None) -> RunnerConfig:
    target = Path(path).expanduser() if path else default_config_path()
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"no runner config at {target}; run `bench-runner register` first or set ${ENV_CONFIG}"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{target}: {exc}") from exc
    try:
        data = json.loads(text) if target.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"{target}: not valid {'JSON' if target.suffix == '.json' else 'TOML'}: {exc}"
        ) from exc
    return RunnerConfig.from_dict(data, source=str(target))
