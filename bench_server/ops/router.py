"""`GET /api/v1/health` and `GET /metrics` (Prometheus, at the root)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST

from bench_server.kit.deps import ReadSession
from bench_server.ops import service

router = APIRouter(tags=["ops"])
metrics_router = APIRouter(tags=["ops"])


@router.get("/health")
def health(session: ReadSession) -> dict[str, Any]:
    return service.health(session)


@metrics_router.get("/metrics", response_class=PlainTextResponse)
def prometheus(session: ReadSession) -> Response:
    """Prometheus text exposition: jobs by state and runners by status."""
    return Response(service.prometheus_text(session), media_type=CONTENT_TYPE_LATEST)
