"""The OpenAPI document says what the API answers: every error is `{"error", "detail"}` (the
shape of kit/errors.py, declared instead of FastAPI's default HTTPValidationError), and each
operation lists the error statuses it can give.

Routers name the statuses their services raise (`responses=error_responses(404, 409)`). The
ones that follow from how a route is built are added here, for every route alike:
- 422 where there is anything to validate (parameters or a body);
- 400 (unparseable JSON) and 413 (BENCH_MAX_BODY_BYTES) where there is a body;
- 401 and 403 where a bearer token is required (the auth dependency's security scheme);
- 429 on every write under the API prefix (kit/rate_limit.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

DESCRIPTIONS = {
    400: "The request cannot be read (a body that is not JSON, a missing header)",
    401: "A bearer token is missing, unknown or revoked",
    403: "The token lacks the scope this request needs",
    404: "What the path names does not exist",
    409: "Conflicts with the stored state (a lost lease, a reused idempotency key, a name taken)",
    413: "The body is larger than BENCH_MAX_BODY_BYTES",
    422: "A field or parameter holds a value the API refuses; `detail` names each",
    429: "Too many requests from this client; retry after `Retry-After` seconds",
}
# Routers of domains that declare their own statuses elsewhere (by OpenAPI tag).
TAG_ERRORS: dict[str, tuple[int, ...]] = {
    "history": (404,),
    "analysis": (404,),
    "runners": (404,),
    "imports": (400,),
}


class FieldError(BaseModel):
    field: str
    message: str
    type: str | None = None


class ErrorOut(BaseModel):
    """Every error body."""

    error: str
    detail: str | list[FieldError]


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: these statuses, each with the error body."""
    return {code: {"model": ErrorOut, "description": DESCRIPTIONS[code]} for code in codes}


def _implied_codes(method: str, path: str, op: dict[str, Any], api_prefix: str) -> set[int]:
    codes: set[int] = set()
    if op.get("parameters") or op.get("requestBody"):
        codes.add(422)
    if op.get("requestBody"):
        codes |= {400, 413}
    if op.get("security"):  # the bearer scheme of auth/deps.py
        codes |= {401, 403}
    if path.startswith(api_prefix + "/") and method not in ("get", "head", "options"):
        codes.add(429)
    for tag in op.get("tags", ()):
        codes |= set(TAG_ERRORS.get(str(tag), ()))
    return codes


def _error_response(code: str, existing: dict[str, Any] | None) -> dict[str, Any]:
    response = dict(existing or {})
    response["description"] = (
        response.get("description")
        if existing and existing.get("description") not in (None, "Validation Error")
        else DESCRIPTIONS[int(code)]
    )
    response["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
    if code == "429":
        response["headers"] = {
            "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}
        }
    return response


def describe_errors(doc: dict[str, Any], api_prefix: str) -> dict[str, Any]:
    """Give every operation its error statuses, each with the ErrorOut body."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_schema.pop("$defs", {}))
    schemas["ErrorOut"] = error_schema
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    for path, path_item in doc.get("paths", {}).items():
        for method, op in path_item.items():
            responses = op.setdefault("responses", {})
            if any(p.get("name") == "format" and p.get("in") == "query" for p in op.get("parameters", [])):
                # a listing (kit/paging.py): ?format=csv or Accept: text/csv streams CSV
                ok = responses.setdefault("200", {"description": "Successful Response"})
                ok.setdefault("content", {"application/json": {"schema": {}}})
                ok["content"]["text/csv"] = {"schema": {"type": "string"}}
            codes = {str(c) for c in _implied_codes(method, path, op, api_prefix)}
            codes |= {c for c in responses if c.startswith("4")}
            for code in sorted(codes):
                responses[code] = _error_response(code, responses.get(code))
    return doc


def install_openapi(app: FastAPI, api_prefix: str) -> None:
    def openapi() -> dict[str, Any]:
        if not app.openapi_schema:
            doc = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            app.openapi_schema = describe_errors(doc, api_prefix)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
