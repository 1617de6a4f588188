"""`bench-runner` command line.

Each subcommand lives in its own module exposing `register(subparsers)`, which adds
its parser and sets `func` (a callable taking the parsed args and returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that contribute subcommands; each has `register(subparsers) -> None`.
SUBCOMMAND_MODULES: list[str] = [
    "bench_runner.serving.cli",
    "bench_runner.localgen.cli",
    "bench_runner.detect",
    "bench_runner.agent",
    "bench_runner.collectives.cli",
    "bench_runner.importers.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench-runner", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
