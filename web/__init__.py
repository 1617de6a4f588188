"""The public website: server-rendered pages (Jinja2) with Plotly figures, mounted by bench_server.

Everything it loads is served here: plotly.js from the installed plotly package, the API docs'
Swagger UI from the fastapi-offline package, the site's own CSS and scripts from web/static. The
site and /docs work offline and behind firewalls.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import plotly
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from web.pages import router
from web.pages.base import error_page
from web.render import render
from web.security import SecurityHeaders

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
# Swagger UI 5 (it renders OpenAPI 3.1, which FastAPI writes): fastapi-offline ships its files.
SWAGGER = Path(str(files("fastapi_offline") / "static"))
SWAGGER_FILES = {"swagger-ui-bundle.js": "application/javascript", "swagger-ui.css": "text/css"}
STATIC = Path(__file__).parent / "static"
CACHE = {"Cache-Control": "public, max-age=86400"}


def mount(app: FastAPI) -> None:
    app.add_middleware(SecurityHeaders)
    app.include_router(router)

    @app.get("/static/plotly.min.js", include_in_schema=False, name="plotly_js")
    def plotly_js() -> FileResponse:
        return FileResponse(PLOTLY_JS, media_type="application/javascript", headers=CACHE)

    @app.get("/static/swagger/{name}", include_in_schema=False, name="swagger_asset")
    def swagger_asset(name: str) -> FileResponse:
        if name not in SWAGGER_FILES:
            raise StarletteHTTPException(404, f"no file {name!r}")
        return FileResponse(SWAGGER / name, media_type=SWAGGER_FILES[name], headers=CACHE)

    @app.get("/docs", include_in_schema=False, name="docs", response_class=HTMLResponse)
    def docs(request: Request) -> HTMLResponse:
        # Not FastAPI's get_swagger_ui_html: that page starts Swagger UI with an inline script,
        # which the Content-Security-Policy (scripts from this server only) refuses.
        return render(request, "docs.html", title="API documentation", openapi_url=app.openapi_url or "")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _html_not_found(app)


def _html_not_found(app: FastAPI) -> None:
    """A 404 for an unknown page is an HTML page for a browser; the API keeps its JSON errors."""
    api_handler = app.exception_handlers[StarletteHTTPException]

    async def not_found(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        wants_html = "text/html" in request.headers.get("accept", "")
        if exc.status_code == 404 and wants_html and not request.url.path.startswith("/api/"):
            return error_page(request, 404, f"nothing at {request.url.path}")
        response: Response = await api_handler(request, exc)  # type: ignore[misc]
        return response

    app.add_exception_handler(StarletteHTTPException, not_found)
