"""The runner config survives a save and a load, whatever characters its values hold."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from bench_runner.config import RunnerConfig, load_config, save_config

NAMES = [
    "gpu-box-1",
    "rack 🚀 runner",  # outside the Basic Multilingual Plane: a surrogate pair in JSON escapes
    "𝔟𝔢𝔫𝔠𝔥",
    'quote " and backslash \\ and tab \t',
    "ünïcödé-日本語",
    "line\nbreak",
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_config_round_trip(tmp_path: Path, name: str, suffix: str) -> None:
    config = RunnerConfig(
        server_url="https://bench.example.org",
        token="tok-🔑-secret",
        name=name,
        hardware_class="cpu-x86_64-🙂",
        runner_id=7,
        labels=["cpu", name],
        work_dir=f"/srv/{name}",
    )
    path = save_config(config, tmp_path / f"config{suffix}")
    assert load_config(path) == config
    if suffix == ".toml":
        # plain TOML that any reader accepts, not only ours
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        assert data["name"] == name and data["labels"] == ["cpu", name]
        assert "\\ud83d" not in path.read_text(encoding="utf-8")
