"""Rendering: the Jinja2 environment (autoescape on), links built by the router and an encoder,
numbers as people read them, and Plotly figures embedded as JSON that cannot break out of
their script element."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_plus, urlencode

import plotly.graph_objects as go
import plotly.io as pio
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context
from jinja2.runtime import Context
from markupsafe import Markup
from starlette.routing import Router

from web.admin import admin_name, csrf_token

TEMPLATES = Path(__file__).parent / "templates"

# (label, route name): the navigation on every page.
NAV = (
    ("Overview", "overview"),
    ("Series", "catalog_page"),
    ("Hardware", "hardware_page"),
    ("Serving", "serving_page"),
    ("Collectives", "collectives_page"),
    ("Alerts", "alerts_page"),
    ("Runners & jobs", "runners_page"),
)
# Pages whose links keep the chosen project.
PROJECT_PAGES = {
    "overview",
    "catalog_page",
    "hardware_page",
    "serving_page",
    "collectives_page",
    "alerts_page",
}


# Path parameters of the routes the pages link to (every other linked route has none).
PATH_PARAMS: dict[str, tuple[str, ...]] = {
    "commit_page": ("sha",),
    "commit_view": ("sha",),
    "get_commit": ("sha",),
    "get_job": ("job_id",),
    "triage": ("alert_id",),
    "static": ("path",),
    "swagger_asset": ("name",),
}
_TEMPLATES: dict[tuple[int, str], str] = {}


def _path_template(router: Router, name: str) -> str:
    """The route's path with a marker for each path parameter, resolved once per name."""
    key = (id(router), name)
    if key not in _TEMPLATES:
        markers = {p: f"\x00{p}\x00" for p in PATH_PARAMS.get(name, ())}
        _TEMPLATES[key] = str(router.url_path_for(name, **markers))
    return _TEMPLATES[key]


def build_url(request: Request, name: str, /, **params: Any) -> str:
    """The path of a named route: path parameters percent-encoded, the rest as an encoded query
    string (None and empty values left out, lists repeated)."""
    path = _path_template(request.app.router, name)
    in_path = PATH_PARAMS.get(name, ())
    for p in in_path:
        path = path.replace(f"\x00{p}\x00", quote(str(params[p]), safe="/" if p == "path" else ""))
    query = [
        (k, v)
        for k, v in params.items()
        if k not in in_path and v is not None and v != "" and v != [] and v != ()
    ]
    return path + ("?" + urlencode(query, doseq=True) if query else "")


def fmt_number(value: Any) -> str:
    """4 significant digits, thousands separated: 1,234 / 56.78 / 0.1234."""
    if value is None:
        return "—"
    v = float(value)
    if not math.isfinite(v):
        return str(v)
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    if a == 0:
        return "0"
    return f"{v:.3g}"


def fmt_change(change: float | None) -> str:
    if change is None:
        return "—"
    if abs(change) < 0.0005:  # not "-0.0%"
        return "±0.0%"
    return f"{change:+.1%}"


def fmt_time(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        text = value
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            return text
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def short(sha: str | None, n: int = 10) -> str:
    return (sha or "")[:n]


def script_json(text: str) -> Markup:
    """JSON to place inside <script type="application/json">: `<`, `>` and `&` (and the two line
    separators JavaScript treats as newlines) become \\u escapes, so no string in it can close
    the element or open a comment; JSON.parse gives the same value back."""
    escaped = (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )
    return Markup(escaped)


def plot_text(value: Any) -> str:
    """A user-supplied string as Plotly shows it: Plotly reads a few HTML tags in labels and
    hover text, so the text is HTML-escaped (Plotly turns the entities back into characters)."""
    return html.escape("" if value is None else str(value), quote=False)


class FigureBlock:
    """A Plotly figure as a page embeds it: a placeholder (with a text fallback for readers
    without JavaScript) and the figure's JSON, drawn by /static/plots.js."""

    def __init__(self, key: str, figure: go.Figure, fallback: str, *, commit_url: str | None = None) -> None:
        self.key = key
        self.figure = figure
        self.fallback = fallback
        self.commit_url = commit_url

    def json(self) -> str:
        # plotly.py's own encoder (numbers, NaN as null), without re-validating the figure.
        text: str = pio.to_json(self.figure, validate=False, pretty=False, engine="json")
        return text

    def html(self) -> Markup:
        attrs = {"type": "application/json", "class": "plotly-figure", "data-target": f"fig-{self.key}"}
        if self.commit_url:
            attrs["data-commit-url"] = self.commit_url
        attr_text = " ".join(f'{k}="{html.escape(v)}"' for k, v in attrs.items())
        key, fallback = html.escape(self.key), html.escape(self.fallback)
        placeholder = (
            f'<div class="figure" id="fig-{key}" aria-label="{fallback}">'
            f'<p class="no-js">{fallback}</p></div>'
        )
        return Markup(placeholder + f"<script {attr_text}>") + script_json(self.json()) + Markup("</script>")


@pass_context
def _url(context: Context, name: str, /, **params: Any) -> str:
    return build_url(context["request"], name, **params)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["url"] = _url
    env.globals["csrf_cookie_token"] = csrf_token
    env.filters.update(num=fmt_number, change=fmt_change, when=fmt_time, duration=fmt_duration, short=short)
    return env


ENV = _environment()


def nav(request: Request, project: str | None) -> list[dict[str, Any]]:
    here = request.scope.get("route")
    current = getattr(here, "name", None)
    return [
        {
            "label": label,
            "href": build_url(request, name, project=project if name in PROJECT_PAGES else None),
            "current": name == current,
        }
        for label, name in NAV
    ]


def render(
    request: Request,
    template: str,
    *,
    title: str,
    project: str | None = None,
    api: Iterable[tuple[str, str]] = (),
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page: the template with the navigation, the page's API calls and the admin state."""
    body = ENV.get_template(template).render(
        request=request,
        title=title,
        project=project,
        nav=nav(request, project),
        api_links=list(api),
        admin=admin_name(request),
        **context,
    )
    return HTMLResponse(body, status_code=status_code)


def api_link(request: Request, name: str, /, **params: Any) -> tuple[str, str]:
    """(label, href) of an API call: the label is the path and query a person would type."""
    href = build_url(request, name, **params)
    return unquote_plus(href), href


def project_choices(
    request: Request, name: str, projects: list[str], current: str | None, **keep: Any
) -> list[dict[str, Any]]:
    return [
        {"slug": p, "href": build_url(request, name, project=p, **keep), "current": p == current}
        for p in projects
    ]


def merge(base: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}
