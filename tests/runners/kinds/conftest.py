"""Helpers for the suite-kind tests: suites from text, run without a git checkout."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bench_runner.suite import Suite, SuiteOutcome, load_suite, run_suite

REPO = Path(__file__).resolve().parents[3]
SUITES_DIR = REPO / "runners" / "suites"
SHA = "0" * 40


def write_suite(tmp_path: Path, text: str, name: str = "suite.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def suite_from(tmp_path: Path) -> Callable[[str], Suite]:
    def make(text: str) -> Suite:
        return load_suite(write_suite(tmp_path, text))

    return make


def run(suite: Suite, tmp_path: Path, **kw: Any) -> SuiteOutcome:
    """run_suite on a plain directory (no git): the kinds need no target repository."""
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    lines: list[str] = kw.pop("lines", [])
    return run_suite(suite, tmp_path / "work", SHA, source_dir=src, log=lines.append, **kw)
