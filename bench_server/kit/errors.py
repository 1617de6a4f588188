"""One error hierarchy and the handlers that give every error body the same shape:
`{"error": "<code>", "detail": <message or list of field errors>}`.

`AppError` and its subclasses are answers to a request; `TransientError` is the background
side's one error: a task failure worth retrying later."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send


class AppError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, detail: Any, *, code: str | None = None) -> None:
        super().__init__(detail if isinstance(detail, str) else code or self.code)
        self.detail = detail
        if code:
            self.code = code


class InvalidInput(AppError):
    """The request is well-formed JSON but a field holds a value we refuse."""

    status_code = 422
    code = "invalid_input"

    def __init__(self, field: str, message: str) -> None:
        super().__init__([{"field": field, "message": message}])


class InvalidFields(AppError):
    """A body validated by hand (not by FastAPI) failed: the same 422 as FastAPI's own."""

    status_code = 422
    code = "validation_error"

    def __init__(self, exc: ValidationError, prefix: tuple[str, ...] = ()) -> None:
        super().__init__(field_errors([*exc.errors()], prefix))


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"


class TransientError(Exception):
    """A task failed for a reason that may pass (a timeout, a 5xx, a refused connection): the
    worker retries it with backoff. Any other exception fails the task at once."""


def error_body(code: str, detail: Any) -> dict[str, Any]:
    return {"error": code, "detail": detail}


async def send_error(
    send: Send, status: int, code: str, detail: Any, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Answer an error from a pure ASGI middleware, in the same shape as the handlers below."""
    raw = json.dumps(error_body(code, detail)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def field_errors(errors: Sequence[Any], prefix: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """pydantic's errors as the API shows them: the field's dotted path, the message, the type."""
    return [
        {
            "field": _field_path((*prefix, *e.get("loc", ()))),
            "message": e.get("msg", "invalid"),
            "type": e.get("type"),
        }
        for e in errors
    ]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse(error_body(exc.code, exc.detail), status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body("validation_error", field_errors(exc.errors())), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse(error_body(code, exc.detail), status_code=exc.status_code, headers=exc.headers)
