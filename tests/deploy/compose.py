"""docker-compose.yml and .env.example as Compose reads them, without Docker: the `.env` format,
variable interpolation (`${VAR}`, `${VAR:-default}`, `${VAR:?message}`, `$$`), and the resolved
services. The rules are the Compose specification's (interpolation section); a mistake here
shows up against Debian's `docker-compose config` in test_compose.py where that is installed."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
# Values an operator fills in: the required variables, empty in .env.example.
FILLED = {
    "POSTGRES_PASSWORD": "0123abcd",
    "BENCH_GITHUB_WEBHOOK_SECRET": "9f2c4e6a8b0d",
    "BENCH_PUBLIC_URL": "https://bench.example.org",
}

# `$$`, `${NAME}`, `${NAME<op><arg>}` with op one of :- - :? ? :+ +, or `$NAME`.
_REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<invalid>\{))"
)


class MissingVariable(Exception):
    """A `${VAR:?message}` (or `${VAR?message}`) whose variable is unset or empty."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


@dataclass(frozen=True)
class Reference:
    name: str
    op: str | None  # None for a plain ${NAME} or $NAME
    arg: str | None


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and `#` comments ignored; optional quotes around the value."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"{path.name}:{number}: not KEY=VALUE: {line!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def interpolate(text: str, env: Mapping[str, str], missing: list[MissingVariable] | None = None) -> str:
    """Substitutes variables in one string. Required variables that are missing raise, or are
    collected into `missing` (so one pass reports them all)."""

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["invalid"]:
            raise ValueError(f"invalid interpolation in {text!r}")
        name = match["braced"] or match["named"]
        op, arg = match["op"], match["arg"] or ""
        value = env.get(name)
        if op in (":?", "?") and (not value if op == ":?" else value is None):
            error = MissingVariable(name, arg)
            if missing is None:
                raise error
            missing.append(error)
            return ""
        if op == ":-":
            return value or arg
        if op == "-":
            return arg if value is None else value
        if op == ":+":
            return arg if value else ""
        if op == "+":
            return "" if value is None else arg
        return value or ""

    return _REFERENCE.sub(substitute, text)


def _walk(node: Any, fn: Any) -> Any:
    if isinstance(node, dict):
        return {key: _walk(value, fn) for key, value in node.items()}
    if isinstance(node, list):
        return [_walk(item, fn) for item in node]
    if isinstance(node, str):
        return fn(node)
    return node


def raw_compose() -> dict[str, Any]:
    """The file as YAML gives it (anchors and `<<` merges resolved, nothing interpolated)."""
    doc = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(doc, dict)
    return doc


def references(doc: Any | None = None) -> list[Reference]:
    """Every variable reference in the file's values, in order, repeats included."""
    found: list[Reference] = []

    def collect(text: str) -> str:
        for match in _REFERENCE.finditer(text):
            if match["braced"] or match["named"]:
                found.append(Reference(match["braced"] or match["named"], match["op"], match["arg"]))
        return text

    _walk(raw_compose() if doc is None else doc, collect)
    return found


def resolve(env: Mapping[str, str]) -> dict[str, Any]:
    """The compose file with every value interpolated from `env` (what `docker compose config`
    computes); raises MissingVariable listing the first required variable that is missing."""
    missing: list[MissingVariable] = []
    doc = _walk(raw_compose(), lambda text: interpolate(text, env, missing))
    if missing:
        raise missing[0]
    assert isinstance(doc, dict)
    return doc


def missing_required(env: Mapping[str, str]) -> set[str]:
    """The required variables `env` leaves unset or empty."""
    missing: list[MissingVariable] = []
    _walk(raw_compose(), lambda text: interpolate(text, env, missing))
    return {m.name for m in missing}


def example_env(**filled: str) -> dict[str, str]:
    """.env.example's values, with `filled` over them (the values an operator fills in)."""
    return {**read_env_file(ENV_EXAMPLE), **filled}


def argv(value: Any) -> list[str]:
    """A command or healthcheck test as an argument list (Compose's string form is split by
    shell rules, which none of ours use)."""
    assert isinstance(value, list), f"use the list form: {value!r}"
    return [str(item) for item in value]
