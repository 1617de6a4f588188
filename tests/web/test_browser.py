"""The website as a person sees it: every page in a real headless Chromium (Debian's, driven by
Playwright) against a live server with the seeded history. Screenshots of each page are saved
under tests/web/artifacts/ (gitignored) to be looked at."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.web.conftest import ARTIFACTS
from tests.web.seed import (
    CLUSTER,
    EVIL_AUTHOR,
    EVIL_BENCHMARK,
    EVIL_BRANCH,
    EVIL_HARDWARE,
    EVIL_MESSAGE,
    EVIL_METRIC,
    EVIL_RUNNER,
    REGRESSION_AT,
    Seeded,
    page_urls,
    sha,
)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EVIL_HW_NAME = "evil&lt;script&gt;alert('hw')&lt;/script&gt;"  # as Plotly gets it (it shows the characters)
# Trace names each page's figures draw, by the figure's element id.
EXPECTED_TRACES: dict[str, dict[str, list[str]]] = {
    "series": {
        "fig-series": [
            "commit",
            CLUSTER,
            "cpu-x86_64",
            "dgx-spark",
            EVIL_HW_NAME,
            "regressions (alerts)",
            "failures",
        ],  # fmt: skip
    },
    "series-vary": {"fig-series": ["commit", "concurrency=1", "concurrency=4", "concurrency=16"]},
    "hardware": {"fig-hardware": ["absolute [tok/s]", "per accelerator", "per watt", "per dollar-hour"]},
    "alerts": {"fig-alert-1": ["commit", "dgx-spark"], "fig-alert-2": ["commit", "dgx-spark"]},
}


@dataclass
class Visit:
    page: Page
    problems: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM, "Debian's chromium is needed for the browser tests (apt-get install chromium)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def visit(browser: Browser) -> Iterator[Visit]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    v = Visit(page)
    page.on(
        "console", lambda m: v.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
    )
    page.on("pageerror", lambda e: v.problems.append(f"page error: {e}"))
    # An injected script that ran would open a dialog.
    page.on("dialog", lambda d: (v.problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("request", lambda r: v.requests.append(r.url))
    page.on("requestfailed", lambda r: v.problems.append(f"request failed: {r.url}"))
    yield v
    context.close()


def load(v: Visit, url: str) -> None:
    response = v.page.goto(url)
    assert response is not None and response.status == 200, url
    v.page.wait_for_load_state("networkidle")
    expected = v.page.locator("script.plotly-figure").count()
    if expected:
        v.page.wait_for_function(
            "n => document.querySelectorAll('.figure[data-drawn=true]').length === n",
            arg=expected,
            timeout=20_000,
        )


def traces(page: Page) -> dict[str, list[str]]:
    value: dict[str, list[str]] = page.evaluate(
        "() => Object.fromEntries(Array.from(document.querySelectorAll('.figure[data-drawn=true]'))"
        ".map(el => [el.id, el.data.map(t => t.name)]))"
    )
    return value


PAGE_NAMES = [
    "overview", "catalog", "series", "series-vary", "series-evil", "commit", "commit-evil", "commit-failed",
    "commit-jobs", "commit-branch", "hardware", "hardware-choose", "serving", "collectives", "alerts",
    "runners", "docs", "sign-in",
]  # fmt: skip


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_each_page_loads_cleanly_draws_its_figures_and_is_captured(
    name: str, live_site: tuple[str, Seeded], visit: Visit
) -> None:
    base, seeded = live_site
    urls = page_urls(seeded)
    assert set(urls) == set(PAGE_NAMES)
    load(visit, base + urls[name])
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"{name}.png"
    visit.page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert visit.problems == []
    # Nothing comes from anywhere but this server (no CDN, offline and behind firewalls).
    assert all(u.startswith(base) or u.startswith("data:") for u in visit.requests), visit.requests
    drawn = traces(visit.page)
    for fig, names in EXPECTED_TRACES.get(name, {}).items():
        assert drawn[fig] == names, (fig, drawn)
    if visit.page.locator("script.plotly-figure").count():
        # Plotly drew SVG, and its toolbar offers the PNG download.
        assert visit.page.locator(".figure .main-svg").count() > 0
        assert visit.page.locator('.modebar-btn[data-title="Download plot as a PNG"]').count() > 0


def test_series_points_and_axes(live_site: tuple[str, Seeded], visit: Visit) -> None:
    base, seeded = live_site
    load(visit, base + page_urls(seeded)["series"])
    counts: dict[str, int] = visit.page.evaluate(
        "() => Object.fromEntries("
        "document.getElementById('fig-series')._fullData.map(t => [t.name, t.x.length]))"
    )
    assert counts["cpu-x86_64"] == 12 and counts[CLUSTER] == 11 and counts["regressions (alerts)"] == 1
    assert "output_throughput [tok/s] (higher is better)" in visit.page.inner_text("#fig-series")
    # The log toggle switches the y axis.
    visit.page.get_by_text("log", exact=True).first.click()
    visit.page.wait_for_function("() => document.getElementById('fig-series').layout.yaxis.type === 'log'")


def _marker_position(page: Page, figure: str, trace_name: str) -> dict[str, float]:
    position: dict[str, float] = page.evaluate(
        """([figure, name]) => {
            const gd = document.getElementById(figure);
            const i = gd.data.findIndex(t => t.name === name);
            const trace = gd._fullData[i];
            const xa = gd._fullLayout.xaxis, ya = gd._fullLayout[trace.yaxis === 'y2' ? 'yaxis2' : 'yaxis'];
            const box = gd.querySelector('.nsewdrag').getBoundingClientRect();
            return {
                x: box.left + xa.l2p(trace.x[0]),
                y: box.top + ya.l2p(trace.y[0]),
                sha: trace.customdata[0],
            };
        }""",
        [figure, trace_name],
    )
    return position


def test_clicking_a_regression_marker_opens_its_commit(live_site: tuple[str, Seeded], visit: Visit) -> None:
    base, seeded = live_site
    load(visit, base + page_urls(seeded)["series"] + "&hardware_class=dgx-spark")
    at = _marker_position(visit.page, "fig-series", "regressions (alerts)")
    assert sha(REGRESSION_AT).startswith(str(at["sha"]))
    visit.page.mouse.move(at["x"], at["y"])
    visit.page.mouse.click(at["x"], at["y"])
    visit.page.wait_for_url(re.compile(rf"/commits/{sha(REGRESSION_AT)[:12]}\?project=exo"), timeout=10_000)
    assert visit.page.locator("h1").inner_text() == f"Commit {sha(REGRESSION_AT)[:12]}"
    assert "regression" in visit.page.locator("#alerts-heading + table").inner_text()
    assert visit.problems == []


def test_injected_markup_stays_text_in_the_browser(live_site: tuple[str, Seeded], visit: Visit) -> None:
    base, seeded = live_site
    urls = page_urls(seeded)
    expected_text = {
        "overview": [EVIL_MESSAGE, EVIL_AUTHOR, EVIL_HARDWARE],
        "commit-evil": [EVIL_MESSAGE, EVIL_AUTHOR, EVIL_BENCHMARK, EVIL_METRIC],
        "commit-branch": [EVIL_BRANCH],
        "runners": [EVIL_RUNNER, EVIL_HARDWARE],
        "series-evil": [EVIL_METRIC, EVIL_BENCHMARK],
        "catalog": [EVIL_BENCHMARK, EVIL_METRIC, EVIL_HARDWARE],
    }
    for name, strings in expected_text.items():
        load(visit, base + urls[name])
        text = visit.page.inner_text("body")
        for s in strings:
            assert s in text, (name, s)
        # No element the markup would have made, and only this site's scripts.
        found: dict[str, Any] = visit.page.evaluate(
            """() => ({
                img: document.querySelectorAll('img[src="x"]').length,
                handlers: document.querySelectorAll('[onmouseover], [onerror]').length,
                scripts: Array.from(document.scripts).filter(
                    s => !s.src && s.type !== "application/json").length,
                badLinks: Array.from(document.links).filter(
                    a => a.protocol === "javascript:").length,
                italic: document.querySelectorAll('main i').length,
            })"""
        )
        assert found == {"img": 0, "handlers": 0, "scripts": 0, "badLinks": 0, "italic": 0}, (name, found)
    assert visit.problems == []


def test_hover_labels_show_markup_as_text(live_site: tuple[str, Seeded], visit: Visit) -> None:
    base, seeded = live_site
    load(visit, base + page_urls(seeded)["series"] + "&hardware_class=cpu-x86_64")
    # Hover the point of commit 7, whose message and author are markup.
    index: int = visit.page.evaluate(
        "sha => document.getElementById('fig-series').data[0].customdata.indexOf(sha)",
        sha(7)[:12],
    )
    visit.page.evaluate(
        "i => Plotly.Fx.hover('fig-series', [{curveNumber: 0, pointNumber: i}])",
        index,
    )
    label = visit.page.locator(".hoverlayer").first.text_content() or ""
    assert "<script>alert('msg')</script>" in label and "mallory" in label
    assert visit.page.locator(".hoverlayer b[onmouseover], .hoverlayer img").count() == 0
    assert visit.problems == []
