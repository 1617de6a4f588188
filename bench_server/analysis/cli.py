"""`bench-server analyse [--project P]`: analyse every series again, from scratch, with a
progress bar, and print what it found. Running it again finds the same alerts."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench_server.analysis.service import Summary, Work
    from bench_server.kit.outbox import AppContext


def cmd_analyse(args: argparse.Namespace) -> int:
    from bench_server.cli import app_context

    with app_context(args) as ctx:
        return analyse(ctx, args.project, progress=not args.quiet)


def analyse(ctx: AppContext, project: str | None, *, progress: bool = True) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from bench_server.analysis import service
    from bench_server.analysis.tasks import run_all
    from bench_server.kit.embedded import local_worker
    from bench_server.kit.outbox import is_embedded

    with ctx.db.read_only() as session:
        ids = service.project_ids(session, project)
        work: list[Work] = [item for pid in ids for item in service.plan_project(session, pid)]
    if project is not None and not ids:
        print(f"no project {project!r}", file=sys.stderr)
        return 2
    summary = service.Summary()
    columns = (TextColumn("analysing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), disable=not progress) as bar:
        task = bar.add_task("analysing", total=len(work))
        for item in work:
            summary.add(run_all(ctx, [item]))
            bar.advance(task)
    if is_embedded(ctx.settings):  # hooks sent to this process's worker: let them finish
        local_worker.drain(timeout=60)
    with ctx.db.read_only() as session:
        stored = service.totals(session, ids)
    _print_summary(summary, stored, len(ids), len(work))
    return 0


def _print_summary(summary: Summary, stored: dict[str, dict[str, int]], projects: int, units: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{projects} project(s), {units} unit(s) of work")
    table.add_column("this run")
    table.add_column("count", justify="right")
    for f in fields(summary):
        table.add_row(f.name.replace("_", " "), str(getattr(summary, f.name)))
    for what, counts in stored.items():
        table.add_section()
        for name, n in counts.items() or {"none": 0}.items():
            table.add_row(f"{what}: {name}", str(n))
    Console().print(table)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("analyse", help="analyse every series again and report alerts and incidents")
    p.add_argument("--project", help="only this project (slug)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_analyse)
