"""The website's pages, one module each; they read through the domains' services and render
templates, never with queries of their own."""

from __future__ import annotations

from web.pages import (
    admin,
    alerts,
    catalog,
    collectives,
    commit,
    hardware,
    overview,
    runners,
    series,
    serving,
)
from web.pages.base import router

__all__ = [
    "admin",
    "alerts",
    "catalog",
    "collectives",
    "commit",
    "hardware",
    "overview",
    "router",
    "runners",
    "series",
    "serving",
]
