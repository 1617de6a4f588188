"""Health and the figures Prometheus scrapes: jobs by state and runners by stored status."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session

from bench_server import __version__
from bench_server.jobs import repository as jobs_repo
from bench_server.ops import repository as repo
from bench_server.runners import repository as runners_repo


def health(session: Session) -> dict[str, Any]:
    return {"status": "ok", "version": __version__, "database": repo.ping(session)}


@dataclass(frozen=True)
class Figures:
    jobs_by_state: dict[str, int]
    runners_by_status: dict[str, int]


def figures(session: Session) -> Figures:
    return Figures(jobs_repo.count_by_state(session), runners_repo.count_by_status(session))


class _FiguresCollector(Collector):
    def __init__(self, figures: Figures) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("bench_jobs", "Jobs by state.", labels=["state"])
        for state, n in sorted(self.figures.jobs_by_state.items()):
            jobs.add_metric([state], n)
        runners = GaugeMetricFamily("bench_runners", "Runners by status.", labels=["status"])
        for status, n in sorted(self.figures.runners_by_status.items()):
            runners.add_metric([status], n)
        yield jobs
        yield runners


def prometheus_text(session: Session) -> bytes:
    """The figures in Prometheus' text exposition format, read now (a registry per scrape: the
    figures live in the database, not in this process)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_FiguresCollector(figures(session)))
    return generate_latest(registry)
