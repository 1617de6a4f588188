"""Bodies of `/api/v1/imports`."""

from __future__ import annotations

from bench_server.results.schemas import IngestOut


class ImportOut(IngestOut):
    format: str
