"""The dashboard as a person sees it: pages rendered by a real headless Chromium."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from bench_server.app import create_app
from bench_server.kit.settings import Settings
from benchmarks._live import free_port
from tests.bench_server.conftest import Api, make_api

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def live(sqlite_database: str) -> Iterator[tuple[str, Api]]:
    api = make_api(sqlite_database)
    for i in range(12):
        body = {
            "idempotency_key": f"k{i}",
            "project": "exo",
            "commit": {"sha": hashlib.sha1(str(i).encode()).hexdigest(), "branch": "main"},
            "machine": {"hardware_class": "dgx-spark"},
            "results": [
                {
                    "suite": "serving",
                    "benchmark": "b",
                    "metric": "output_throughput",
                    "unit": "tok/s",
                    "direction": "higher",
                    "value": 100.0 if i < 8 else 80.0,
                }
            ],
        }
        assert api.ingest(body).status_code == 201
    port = free_port()
    app = create_app(Settings(database_url=sqlite_database), db=api.db)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}", api
    server.should_exit = True
    thread.join(timeout=10)
    api.db.engine.dispose()


def render(url: str, tmp_path: Path, *, screenshot: Path | None = None) -> str:
    """The DOM after scripts ran, from headless Chromium (flags for a closed network)."""
    assert CHROMIUM, "Debian's chromium is needed for the dashboard tests (scripts/services.sh installs it)"
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1200,800",
        "--virtual-time-budget=10000",
    ]
    if screenshot is not None:
        subprocess.run(
            [*args, f"--screenshot={screenshot}", url], capture_output=True, timeout=120, check=True
        )
    done = subprocess.run([*args, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def test_series_page_draws_the_plot(live: tuple[str, Api], tmp_path: Path) -> None:
    base, _ = live
    home = render(base + "/", tmp_path)
    link = re.search(r'href="(/series\?[^"]+)"', home)
    assert link, home[:2000]
    shot = tmp_path / "series.png"
    dom = render(base + link.group(1).replace("&amp;", "&"), tmp_path, screenshot=shot)
    # Plotly ran in the browser: it replaced the placeholder div with its SVG plot and one
    # point per commit.
    assert 'class="main-svg"' in dom
    assert len(re.findall(r'<path class="point[ "]', dom)) == 12
    assert "output_throughput [tok/s] (higher is better)" in dom
    assert shot.stat().st_size > 10_000


def test_dashboard_needs_no_outside_network(live: tuple[str, Api]) -> None:
    base, _ = live
    home = httpx.get(base + "/").text
    page = httpx.get(base + re.findall(r'href="(/series\?[^"]+)"', home)[0].replace("&amp;", "&")).text
    assert "cdn" not in page.lower()
    assert [src for src in re.findall(r'src="([^"]+)"', page)] == ["/static/plotly.min.js"]
