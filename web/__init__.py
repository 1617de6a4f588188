"""The public dashboard: server-rendered pages with Plotly figures, mounted by bench_server."""

from __future__ import annotations

from pathlib import Path

import plotly
from fastapi import FastAPI
from fastapi.responses import FileResponse

from web.pages import router

# plotly.js ships inside the Python package: the dashboard works with no CDN.
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def mount(app: FastAPI) -> None:
    app.include_router(router)

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(
            PLOTLY_JS, media_type="application/javascript", headers={"Cache-Control": "max-age=86400"}
        )
