"""`POST /api/v1/imports`: upload a file, parsed by the shared importers in bench_formats."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from bench_formats import FORMATS, ImportFormatError, parse
from fastapi import APIRouter, Body, Query, Response
from pydantic import ValidationError

from bench_server.auth.deps import IngestAuth
from bench_server.kit.deps import DbSession
from bench_server.kit.errors import AppError, InvalidInput
from bench_server.results.schemas import IngestIn
from bench_server.results.service import ingest

router = APIRouter(tags=["imports"])


@router.post("/imports", status_code=201)
def upload_import(
    session: DbSession,
    _: IngestAuth,
    response: Response,
    content: Annotated[str, Body(media_type="text/plain", description="the tool's output file, as text")],
    project: str,
    sha: Annotated[str, Query(description="the commit the file measured")],
    hardware_class: str,
    format: Annotated[str, Query(description=f"auto or one of {', '.join(FORMATS)}")] = "auto",
    branch: str | None = None,
    filename: str | None = None,
    idempotency_key: Annotated[str | None, Query(description="defaults to a hash of the upload")] = None,
) -> dict[str, Any]:
    """Parse an output file and store its results and failures as one all-or-nothing batch."""
    try:
        outcome = parse(format, content, source_name=filename)
    except ImportFormatError as exc:
        raise InvalidInput("content", exc.message) from exc
    if idempotency_key is None:
        digest = hashlib.sha256("\0".join([project, sha, hardware_class, content]).encode()).hexdigest()
        idempotency_key = f"import/{outcome.meta['format']}/{digest[:40]}"
    try:
        payload = IngestIn.model_validate(
            {
                "idempotency_key": idempotency_key,
                "project": project,
                "commit": {"sha": sha, "branch": branch},
                "machine": {
                    "hardware_class": hardware_class,
                    "fingerprint": {"imported_from": outcome.meta["format"]},
                },
                "context": {
                    "import": {k: v for k, v in outcome.meta.items() if isinstance(v, str | int | float)}
                },
                "results": [r.to_json() for r in outcome.results],
                "failures": [f.to_json() for f in outcome.failures],
            }
        )
    except ValidationError as exc:
        fields = [
            {"field": ".".join(str(p) for p in e["loc"]) or "content", "message": e["msg"]}
            for e in exc.errors()
        ]
        raise AppError(fields, code="validation_error") from exc
    stored = ingest(session, payload, source=f"import:{outcome.meta['format']}")
    if stored.duplicate:
        response.status_code = 200
    return {
        "batch_id": stored.batch_id,
        "duplicate": stored.duplicate,
        "format": outcome.meta["format"],
        "results": stored.results,
        "failures": stored.failures,
    }
