"""Cursor paging and streamed CSV / JSON export shared by every listing endpoint."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import Select
from sqlalchemy.orm import Session

from bench_server.kit.deps import get_database
from bench_server.kit.errors import InvalidInput
from bench_server.kit.fastjson import json_response
from bench_server.kit.params import MAX_ID

EXPORT_BATCH = 1000


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        kind, _, value = base64.urlsafe_b64decode(padded).decode().partition(":")
        # An id the database can hold: a forged cursor is refused here, not by the driver.
        if kind != "id" or not value.isdigit() or not 1 <= int(value) <= MAX_ID:
            raise ValueError(kind)
        return int(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor", "not a cursor this API handed out") from exc


ExportFormat = Literal["csv", "json", ""]


def export_format(request: Request, fmt: str | None) -> str | None:
    """`?format=csv|json` wins; otherwise `Accept: text/csv` asks for CSV. None means a JSON page
    (an empty `?format=` too)."""
    if fmt:
        if fmt not in ("csv", "json"):
            raise InvalidInput("format", "use csv or json")
        return fmt
    if "text/csv" in request.headers.get("accept", ""):
        return "csv"
    return None


def _csv_cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


Row = dict[str, Any]


@dataclass(frozen=True)
class Listing:
    """A listing as its repository defines it: the query (unordered, unpaged), the id column that
    orders it newest first and keys the cursor, the names of a row's columns, and how a row
    becomes a dict (by default: the columns zipped with the row)."""

    name: str
    query: Select[*tuple[Any, ...]]
    id_column: Any
    columns: list[str]
    to_row: Callable[[Any], Row] | None = None


@dataclass(frozen=True)
class PageParams:
    cursor: str | None
    limit: int
    format: str | None


def page_params(
    request: Request,
    cursor: Annotated[
        str | None, Query(max_length=64, description="next_cursor of the previous page")
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_ID, description="rows per page (capped by BENCH_MAX_PAGE_SIZE)")
    ] = 100,
    format: Annotated[
        ExportFormat | None,
        Query(description="csv or json: stream the whole listing; empty or absent: a page of JSON"),
    ] = None,
) -> PageParams:
    return PageParams(cursor, min(limit, request.app.state.settings.max_page_size), format)


# The paging and export parameters every listing endpoint takes.
Page = Annotated[PageParams, Depends(page_params)]


def listing_response(request: Request, session: Session, page: PageParams, listing: Listing) -> Any:
    """Newest first. A page of JSON with `next_cursor` (read in the request's session), or the
    whole listing streamed as CSV/JSON."""
    columns = listing.columns
    to_row = listing.to_row or (lambda r: dict(zip(columns, r, strict=True)))
    export = export_format(request, page.format)
    query = listing.query
    after = decode_cursor(page.cursor)
    if after is not None:
        query = query.where(listing.id_column < after)
    query = query.order_by(listing.id_column.desc())
    if export is None:
        limit = page.limit
        rows = [to_row(r) for r in session.execute(query.limit(limit + 1))]
        next_cursor = encode_cursor(rows[limit - 1]["id"]) if len(rows) > limit else None
        return json_response({"items": rows[:limit], "next_cursor": next_cursor})

    db = get_database(request)

    def stream_rows() -> Iterator[Row]:
        # Its own session: the request's session is gone by the time the body streams.
        with db.read_only() as export_session:
            for row in export_session.execute(query.execution_options(yield_per=EXPORT_BATCH)):
                yield to_row(row)

    if export == "csv":

        def csv_body() -> Iterator[str]:
            buf = io.StringIO()
            writer = csv.writer(buf)
            writer.writerow(columns)
            for n, row in enumerate(stream_rows(), 1):
                writer.writerow([_csv_cell(row.get(c)) for c in columns])
                if n % EXPORT_BATCH == 0:
                    yield buf.getvalue()
                    buf.seek(0)
                    buf.truncate()
            yield buf.getvalue()

        return StreamingResponse(
            csv_body(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{listing.name}.csv"'},
        )

    def json_body() -> Iterator[str]:
        yield "["
        for n, row in enumerate(stream_rows()):
            yield ("," if n else "") + json.dumps(row, default=_json_default)
        yield "]"

    return StreamingResponse(json_body(), media_type="application/json")
