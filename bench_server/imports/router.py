"""`POST /api/v1/imports`: upload another tool's output file, stored as one ingest batch."""

from __future__ import annotations

from typing import Annotated

from bench_formats import FORMATS
from fastapi import APIRouter, Body, Query, Response

from bench_server.auth.deps import IngestAuth
from bench_server.imports.schemas import ImportOut
from bench_server.imports.service import Upload, import_file
from bench_server.kit.deps import AppCtx, DbSession
from bench_server.results.schemas import Poster

router = APIRouter(tags=["imports"])


@router.post(
    "/imports",
    status_code=201,
    response_model=ImportOut,
    responses={200: {"model": ImportOut, "description": "The same file was imported before"}},
)
def upload_import(
    session: DbSession,
    ctx: AppCtx,
    principal: IngestAuth,
    response: Response,
    content: Annotated[str, Body(media_type="text/plain", description="the tool's output file, as text")],
    project: str,
    sha: Annotated[str, Query(description="the commit the file measured")],
    hardware_class: str,
    format: Annotated[str, Query(description=f"auto or one of {', '.join(FORMATS)}")] = "auto",
    branch: str | None = None,
    filename: str | None = None,
    idempotency_key: Annotated[str | None, Query(description="defaults to a hash of the upload")] = None,
) -> ImportOut:
    """Parse an output file and store its results and failures as one all-or-nothing batch."""
    upload = Upload(content, project, sha, hardware_class, format, branch, filename, idempotency_key)
    stored = import_file(session, ctx, upload, Poster.of(principal.name, principal.runner_id))
    if stored.batch.duplicate:
        response.status_code = 200
    return ImportOut(
        batch_id=stored.batch.batch_id,
        duplicate=stored.batch.duplicate,
        results=stored.batch.results,
        failures=stored.batch.failures,
        format=stored.format,
    )
