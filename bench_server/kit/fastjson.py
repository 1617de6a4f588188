"""JSON responses encoded with orjson: the read endpoints return thousands of floats, and
orjson writes them several times faster than the standard library."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response


def json_response(data: Any, status_code: int = 200) -> Response:
    # orjson writes datetimes as ISO 8601 and refuses NaN/inf like the ingest does.
    return Response(orjson.dumps(data), status_code=status_code, media_type="application/json")
