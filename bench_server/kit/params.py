"""URL parameter types with the bounds the database has: ids are positive 64-bit integers, sha
filters are hex (a `%` or `_` is never a LIKE wildcard), and times are ISO 8601 only."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import AfterValidator, BeforeValidator

from bench_server.kit.inputs import MAX_INT64

MAX_ID = MAX_INT64

PathId = Annotated[int, Path(ge=1, le=MAX_ID, description="a positive 64-bit id")]
QueryId = Annotated[int | None, Query(ge=1, le=MAX_ID, description="a positive 64-bit id")]

SHA_PREFIX_PATTERN = r"^[0-9a-fA-F]{1,64}$"
ShaPrefix = Annotated[
    str | None, Query(pattern=SHA_PREFIX_PATTERN, description="a commit sha or a prefix of it (hex)")
]

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _iso_only(value: Any) -> Any:
    # pydantic reads a bare number as Unix seconds ("0.5" would be 1970-01-01T00:00:00.5Z);
    # a URL parameter takes ISO 8601 only, so a typo is an error and never the epoch.
    if isinstance(value, str) and not _ISO_DATE.match(value.strip()):
        raise ValueError("an ISO 8601 date or datetime, e.g. 2026-01-31 or 2026-01-31T12:00:00Z")
    return value


def _utc_if_naive(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


IsoDatetime = Annotated[datetime, BeforeValidator(_iso_only), AfterValidator(_utc_if_naive)]
