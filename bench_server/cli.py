"""`bench-server` command line: migrate, serve, tokens, projects, demo, trigger, analyse."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from bench_server.kit.settings import get_settings

if TYPE_CHECKING:
    from bench_server.kit.outbox import AppContext


def _db_url(args: argparse.Namespace) -> str:
    return str(args.database_url or get_settings().database_url)


@contextmanager
def app_context(args: argparse.Namespace) -> Iterator[AppContext]:
    """The settings of the environment (with --database-url) and a database for a command."""
    from bench_server.kit.db import Database
    from bench_server.kit.outbox import AppContext

    settings = get_settings()
    if args.database_url:
        settings = settings.model_copy(update={"database_url": args.database_url})
    ctx = AppContext(Database.from_url(settings.database_url), settings)
    try:
        yield ctx
    finally:
        ctx.db.engine.dispose()


def cmd_migrate(args: argparse.Namespace) -> int:
    from bench_server.kit.migrate import downgrade, upgrade

    if args.down:
        downgrade(_db_url(args), args.revision or "base")
    else:
        upgrade(_db_url(args), args.revision or "head")
    print(f"database at {args.revision or ('base' if args.down else 'head')}", file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    uvicorn.run(
        "bench_server.app:create_app", factory=True, host=args.host, port=args.port, workers=args.workers
    )
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    from bench_server.auth.service import create_token
    from bench_server.kit.db import Database

    db = Database.from_url(_db_url(args))
    with db.transaction() as session:
        issued = create_token(session, args.name, args.scope)
    # The token itself goes to stdout alone so scripts can capture it; the rest to stderr.
    print(f"token {issued.id} ({', '.join(issued.scopes)}) created; it is shown only once", file=sys.stderr)
    print(issued.token)
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from bench_server.auth.service import revoke_token
    from bench_server.kit.db import Database

    with Database.from_url(_db_url(args)).transaction() as session:
        found = revoke_token(session, args.id)
    print("revoked" if found else f"no token {args.id}", file=sys.stderr)
    return 0 if found else 1


def cmd_project_create(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from bench_server.catalog.schemas import ProjectIn
    from bench_server.catalog.service import create_project
    from bench_server.kit.db import Database
    from bench_server.kit.errors import Conflict

    try:
        body = ProjectIn(
            slug=args.slug,
            name=args.name,
            clone_url=args.clone_url,
            default_branch=args.default_branch,
            github_repo=args.github_repo,
        )
    except ValidationError as exc:
        print(f"invalid project: {exc}", file=sys.stderr)
        return 2
    try:
        with Database.from_url(_db_url(args)).transaction() as session:
            create_project(session, body)
    except Conflict as exc:
        print(exc.detail, file=sys.stderr)
        return 0
    print(json.dumps(body.model_dump()))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bench_server.demo import run_demo

    return run_demo(host=args.host, port=args.port, workdir=args.workdir, keep_running=not args.no_serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench-server", description="Continuous benchmarking service")
    parser.add_argument("--database-url", help="overrides BENCH_DATABASE_URL")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.set_defaults(func=func)
        return p

    p = add("migrate", cmd_migrate, "apply Alembic migrations (upgrade to head by default)")
    p.add_argument("--revision")
    p.add_argument("--down", action="store_true", help="downgrade instead (to base by default)")

    p = add("serve", cmd_serve, "run the API with uvicorn")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)

    token = sub.add_parser("token", help="API tokens").add_subparsers(dest="token_command", required=True)
    p = token.add_parser("create", help="create a token and print it once")
    p.add_argument("--name", required=True)
    p.add_argument(
        "--scope", action="append", required=True, choices=["runner", "ci", "admin", "register", "triage"]
    )
    p.set_defaults(func=cmd_token_create)
    p = token.add_parser("revoke", help="revoke a token by id")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_token_revoke)

    project = sub.add_parser("project", help="projects").add_subparsers(dest="project_command", required=True)
    p = project.add_parser("create", help="create a project (target repository)")
    p.add_argument("slug")
    p.add_argument("--name")
    p.add_argument("--clone-url")
    p.add_argument("--default-branch", default="main")
    p.add_argument("--github-repo", help="owner/repo")
    p.set_defaults(func=cmd_project_create)

    p = add("demo", cmd_demo, "the embedded demo: SQLite, the API and sample data, no services needed")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workdir", default=".demo")
    p.add_argument("--no-serve", action="store_true", help="load the data, check it, and exit")

    from bench_server.analysis import cli as analysis_cli  # `analyse`
    from bench_server.runs import cli as runs_cli  # `trigger`

    runs_cli.register(sub)
    analysis_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
