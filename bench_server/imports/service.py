"""Rules of an import: parse the file, name the batch, store it through the results service.

Nothing here commits (the request is the unit of work) and nothing here writes SQL: a parsed
file becomes an ordinary `IngestIn` batch, so `results.service.ingest` stores it with the same
checks, the same idempotency and the same all-or-nothing rule as a runner's POST.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from bench_formats import ImportFormatError, ImportOutcome, parse
from pydantic import ValidationError
from sqlalchemy.orm import Session

from bench_server.kit.errors import AppError, InvalidInput
from bench_server.kit.outbox import AppContext
from bench_server.results.schemas import IngestIn, Poster
from bench_server.results.service import IngestOutcome, ingest


@dataclass(frozen=True)
class Upload:
    """One uploaded output file and what the uploader said about it."""

    content: str
    project: str
    sha: str
    hardware_class: str
    format: str = "auto"
    branch: str | None = None
    filename: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class StoredImport:
    format: str
    batch: IngestOutcome


def import_file(session: Session, ctx: AppContext, upload: Upload, poster: Poster) -> StoredImport:
    """Parse `upload` and store its results and failures as one batch (a duplicate if seen before)."""
    outcome = _parse(upload)
    fmt = str(outcome.meta["format"])
    batch = ingest(session, ctx, _ingest_payload(upload, outcome), poster, source=f"import:{fmt}")
    return StoredImport(fmt, batch)


def _parse(upload: Upload) -> ImportOutcome:
    try:
        return parse(upload.format, upload.content, source_name=upload.filename)
    except ImportFormatError as exc:
        raise InvalidInput("content", exc.message) from exc


def default_idempotency_key(upload: Upload, fmt: str) -> str:
    """The same file uploaded again for the same commit and hardware is the same batch."""
    parts = [upload.project, upload.sha, upload.hardware_class, upload.content]
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()
    return f"import/{fmt}/{digest[:40]}"


def _ingest_payload(upload: Upload, outcome: ImportOutcome) -> IngestIn:
    fmt = str(outcome.meta["format"])
    key = upload.idempotency_key
    body: dict[str, Any] = {
        "idempotency_key": default_idempotency_key(upload, fmt) if key is None else key,
        "project": upload.project,
        "commit": {"sha": upload.sha, "branch": upload.branch},
        "machine": {"hardware_class": upload.hardware_class, "fingerprint": {"imported_from": fmt}},
        # The importer's scalar facts (tool version, source file name, ...) go with the batch.
        "context": {"import": {k: v for k, v in outcome.meta.items() if isinstance(v, str | int | float)}},
        "results": [r.to_json() for r in outcome.results],
        "failures": [f.to_json() for f in outcome.failures],
    }
    try:
        return IngestIn.model_validate(body)
    except ValidationError as exc:
        # The upload's own query values (sha, project, ...) or a parsed value the schema refuses.
        fields = [
            {"field": ".".join(str(p) for p in e["loc"]) or "content", "message": e["msg"]}
            for e in exc.errors()
        ]
        raise AppError(fields, code="validation_error") from exc
