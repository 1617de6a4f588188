"""`bench-runner import FILE [--format auto] [--json]`: parse another tool's output and print the records."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench_formats import FORMATS, ImportFormatError, parse


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "import",
        help="parse nccl-tests / vLLM / SGLang / LLMPerf / llama-bench / exo / "
        "mlx_lm output into result records",
    )
    p.add_argument("file", help="the tool's output file ('-' for stdin)")
    p.add_argument("--format", default="auto", help=f"auto or one of {', '.join(FORMATS)}")
    p.add_argument("--json", action="store_true", help="print {results, failures, meta} as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.file == "-":
        text, name = sys.stdin.read(), None
    else:
        path = Path(args.file)
        text, name = path.read_text(errors="replace"), path.name
    try:
        outcome = parse(args.format, text, source_name=name)
    except ImportFormatError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    if args.json:
        json.dump(outcome.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"# {outcome.meta.get('format')}: {len(outcome.results)} results, {len(outcome.failures)} failures")
    for r in outcome.results:
        params = ",".join(f"{k}={v}" for k, v in r.params.items())
        print(f"{r.suite}\t{r.benchmark}\t{r.metric}\t{r.value:.6g} {r.unit}\t({r.direction})\t{params}")
    for f in outcome.failures:
        print(f"FAILURE\t{f.suite}\t{f.benchmark}\t{f.failure_class}\t{f.message}")
    return 0
