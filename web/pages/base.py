"""The pages' router: an error in a page (an unknown project, series or commit; a bad query
parameter) answers as an HTML page with the error's status, not as the API's JSON."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from bench_server.kit.errors import AppError
from web.render import render

TITLES = {
    400: "Bad request",
    401: "Sign-in needed",
    403: "Not allowed",
    404: "Not found",
    422: "Not understood",
}


def error_page(request: Request, status: int, detail: Any) -> Response:
    if isinstance(detail, list):  # field errors: [{"field": ..., "message": ...}]
        messages = [
            f"{d.get('field', '')}: {d.get('message', d.get('msg', ''))}"
            for d in detail
            if isinstance(d, dict)
        ]
    else:
        messages = [str(detail)]
    return render(
        request,
        "error.html",
        title=TITLES.get(status, "Error"),
        status=status,
        messages=messages,
        status_code=status,
    )


class PageRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except AppError as exc:
                return error_page(request, exc.status_code, exc.detail)
            except RequestValidationError as exc:
                fields = [
                    {
                        "field": ".".join(str(p) for p in e.get("loc", ())[1:]),
                        "message": e.get("msg", "invalid"),
                    }
                    for e in exc.errors()
                ]
                return error_page(request, 422, fields)

        return page_handler


router = APIRouter(route_class=PageRoute, include_in_schema=False)
