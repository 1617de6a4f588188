"""`bench-server trigger`: benchmark a commit from a terminal (the same path as POST /api/v1/runs)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from bench_server.kit.errors import AppError

if TYPE_CHECKING:
    from bench_server.kit.outbox import AppContext


def cmd_trigger(args: argparse.Namespace) -> int:
    from bench_server.cli import app_context

    with app_context(args) as ctx:
        return _trigger(args, ctx)


def _trigger(args: argparse.Namespace, ctx: AppContext) -> int:
    from bench_server.kit.embedded import local_worker
    from bench_server.kit.outbox import is_embedded
    from bench_server.runs import service

    settings = ctx.settings
    trigger = service.Trigger(
        project=args.project,
        sha=args.sha,
        ref=args.ref,
        branch=args.branch,
        suites=args.suite or None,
        hardware_classes=args.hardware_class or None,
        force=args.force,
        source="cli",
        priority=args.priority,
    )
    try:
        with ctx.db.transaction() as session:
            run = service.create_run(session, ctx, trigger)
    except AppError as exc:
        print(f"trigger refused: {exc.detail}", file=sys.stderr)
        return 2
    if is_embedded(settings):  # the fan-out runs in this process: wait for it
        local_worker.drain(timeout=60)
    with ctx.db.read_only() as session:
        status = service.run_status(session, run.id)
    out: dict[str, Any] = {
        "run_id": run.id,
        "project": args.project,
        "sha": status["sha"],
        "fanned_out": bool(status["fanned_out_at"]),
        "jobs": [
            {"id": j["id"], "suite": j["suite"], "hardware_class": j["hardware_class"]}
            for j in status["jobs"]
        ],
    }
    print(json.dumps(out))
    if not is_embedded(settings):
        print(f"run {run.id}: the fan-out is queued for a worker", file=sys.stderr)
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("trigger", help="benchmark a commit: record it and queue its jobs")
    p.add_argument("project", help="project slug")
    p.add_argument("sha", help="commit sha (7 to 64 hex digits)")
    p.add_argument("--ref", help="e.g. refs/heads/main (gives the branch and the priority)")
    p.add_argument("--branch", help="branch of the commit (default: from --ref)")
    p.add_argument(
        "--suite", action="append", help="suite to run (repeatable; default: the project's suites)"
    )
    p.add_argument(
        "--hardware-class",
        action="append",
        help="class to run on (repeatable; default: classes with runners)",
    )
    p.add_argument("--force", action="store_true", help="queue again even if already queued, running or done")
    p.add_argument("--priority", type=int, help="lower runs first (default: from the ref)")
    p.set_defaults(func=cmd_trigger)
