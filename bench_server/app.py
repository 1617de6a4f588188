"""The FastAPI application factory."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import PlainTextResponse
from sqlalchemy import func, select, text

from bench_server import __version__
from bench_server.catalog.router import router as catalog_router
from bench_server.github.router import router as github_router
from bench_server.history.router import router as history_router
from bench_server.imports.router import router as imports_router
from bench_server.jobs.router import router as jobs_router
from bench_server.kit.body_limit import BodySizeLimit
from bench_server.kit.db import Database
from bench_server.kit.deps import AppDatabase
from bench_server.kit.errors import install_error_handlers
from bench_server.kit.settings import Settings, get_settings
from bench_server.models import Job, Runner
from bench_server.results.router import router as results_router
from bench_server.runners.router import router as runners_router

API_PREFIX = "/api/v1"

# Domain routers mounted under /api/v1. Later domains append themselves here.
DOMAIN_ROUTERS: list[APIRouter] = [results_router, history_router, catalog_router, imports_router]
DOMAIN_ROUTERS += [jobs_router, runners_router, github_router]


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="bench-server",
        version=__version__,
        description="Continuous benchmarks for distributed AI on heterogeneous hardware. "
        "Reads are public; writes need a bearer token with a scope (runner, ci, admin).",
        docs_url="/docs",
        openapi_url=f"{API_PREFIX}/openapi.json",
    )
    app.state.settings = settings
    app.state.db = db or Database.from_url(settings.database_url)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)

    for router in DOMAIN_ROUTERS:
        app.include_router(router, prefix=API_PREFIX)

    @app.get(f"{API_PREFIX}/health", tags=["ops"])
    def health(db: AppDatabase) -> dict[str, Any]:
        with db.read_only() as session:
            session.execute(text("SELECT 1"))
        return {"status": "ok", "version": __version__, "database": db.engine.dialect.name}

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    def prometheus(db: AppDatabase) -> str:
        """Prometheus text exposition: jobs by state and runners by status."""
        lines = [
            "# HELP bench_jobs Jobs by state.",
            "# TYPE bench_jobs gauge",
        ]
        with db.read_only() as session:
            for state, n in session.execute(select(Job.state, func.count()).group_by(Job.state)):
                lines.append(f'bench_jobs{{state="{state}"}} {n}')
            lines += ["# HELP bench_runners Runners by status.", "# TYPE bench_runners gauge"]
            for status, n in session.execute(select(Runner.status, func.count()).group_by(Runner.status)):
                lines.append(f'bench_runners{{status="{status}"}} {n}')
        return "\n".join(lines) + "\n"

    _mount_web(app)
    return app


def _mount_web(app: FastAPI) -> None:
    from web import mount

    mount(app)
