"""The GitHub Actions side: environment defaults, step outputs and the step summary."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value else default


def default_sha() -> str | None:
    return env("BENCH_SHA") or env("GITHUB_SHA")


def default_ref() -> str | None:
    return env("GITHUB_REF")


def set_outputs(values: Mapping[str, object]) -> None:
    """Append `name=value` lines to $GITHUB_OUTPUT (multi-line values use a delimiter)."""
    path = env("GITHUB_OUTPUT")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as fh:
        for key, value in values.items():
            text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
            if "\n" in text:
                marker = f"EOF_{uuid.uuid4().hex}"
                fh.write(f"{key}<<{marker}\n{text}\n{marker}\n")
            else:
                fh.write(f"{key}={text}\n")


def write_summary(markdown: str) -> None:
    path = env("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(markdown.rstrip("\n") + "\n")
