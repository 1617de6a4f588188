"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from bench_server import __version__
from bench_server.analysis.router import router as analysis_router
from bench_server.catalog.router import router as catalog_router
from bench_server.github.router import router as github_router
from bench_server.history.router import router as history_router
from bench_server.imports.router import router as imports_router
from bench_server.jobs.router import router as jobs_router
from bench_server.kit.body_limit import BodySizeLimit
from bench_server.kit.db import Database
from bench_server.kit.embedded import local_worker
from bench_server.kit.errors import install_error_handlers
from bench_server.kit.openapi import install_openapi
from bench_server.kit.outbox import AppContext, is_embedded
from bench_server.kit.rate_limit import Limit, RateLimit
from bench_server.kit.settings import Settings, get_settings
from bench_server.kit.url_guard import UrlGuard
from bench_server.ops.router import metrics_router
from bench_server.ops.router import router as ops_router
from bench_server.results.router import router as results_router
from bench_server.runners.router import router as runners_router
from bench_server.runs.router import router as runs_router
from bench_server.tasks import periodic_tasks

API_PREFIX = "/api/v1"
# How long an embedded app's shutdown waits for the tasks it queued.
EMBEDDED_DRAIN_S = 60.0

# Every domain router, mounted under /api/v1.
DOMAIN_ROUTERS: list[APIRouter] = [
    results_router,
    history_router,
    catalog_router,
    imports_router,
    runs_router,
    jobs_router,
    runners_router,
    github_router,
    analysis_router,
    ops_router,
]


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    ctx = AppContext(db or Database.from_url(settings.database_url), settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Embedded mode has no beat: the in-process worker's tick runs the periodic tasks.
        handle = local_worker.start_periodic(ctx, periodic_tasks(settings)) if is_embedded(settings) else None
        try:
            yield
        finally:
            if handle is not None:
                local_worker.stop_periodic(handle)
                # What this process was asked to do after its commits (an ingest's analysis)
                # finishes before it stops, rather than dying with the thread.
                local_worker.drain(timeout=EMBEDDED_DRAIN_S)

    app = FastAPI(
        title="bench-server",
        version=__version__,
        description="Continuous benchmarks for distributed AI on heterogeneous hardware. "
        "Reads are public; writes need a bearer token with a scope (runner, ci, admin, triage).",
        # /docs is served by web/ with Swagger UI's files from this server (no CDN); ReDoc is off.
        docs_url=None,
        redoc_url=None,
        openapi_url=f"{API_PREFIX}/openapi.json",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = ctx.db
    install_error_handlers(app)
    # The last added runs first: CORS, then rate limits, then URL and body checks, all before
    # a route reads the body.
    app.add_middleware(UrlGuard)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        RateLimit,
        writes=Limit(settings.rate_limit_writes_per_s, settings.rate_limit_writes_burst),
        webhook=Limit(settings.rate_limit_webhook_per_s, settings.rate_limit_webhook_burst),
        prefix=API_PREFIX,
        webhook_path=f"{API_PREFIX}/github/webhook",
    )
    if settings.cors_origins:  # closed by default: no Access-Control-* headers at all
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "HEAD", "POST", "PUT"],
            allow_headers=["Authorization", "Content-Type"],
        )

    for router in DOMAIN_ROUTERS:
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(metrics_router)
    _mount_web(app)
    install_openapi(app, API_PREFIX)
    return app


def _mount_web(app: FastAPI) -> None:
    from web import mount

    mount(app)
