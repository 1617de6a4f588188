"""The background tasks: each one's name, queue and body, and the periodic schedule.

Plain data and one builder; importing this module builds no Celery app and reads no settings.
Tasks are named `"<domain>.<verb>"` and take ids only. A body is a plain function `fn(ctx, *ids)`
in its domain's `tasks.py`, so it runs the same way under a Celery worker (`bench_server.worker`,
production: `BENCH_BROKER_URL=redis://...`) and in the embedded worker thread (`kit/embedded.py`,
when the broker is `memory://`). Either way a task is sent only after the transaction that made it
necessary has committed (`kit/outbox.py`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bench_server.kit.settings import Settings

if TYPE_CHECKING:
    from celery import Celery


@dataclass(frozen=True)
class TaskSpec:
    queue: str
    body: str  # "module:function", called as fn(ctx, *args)


# Declared queues; nothing lands on an implicit one.
QUEUES = ("dispatch", "maintenance", "github", "analysis")
TASKS: dict[str, TaskSpec] = {
    "runs.fan_out": TaskSpec("dispatch", "bench_server.runs.tasks:fan_out"),
    "runs.fan_out_stale": TaskSpec("maintenance", "bench_server.runs.tasks:fan_out_stale"),
    "jobs.reap_expired": TaskSpec("maintenance", "bench_server.jobs.tasks:reap_expired"),
    "runners.mark_offline": TaskSpec("maintenance", "bench_server.runners.tasks:mark_offline"),
    "github.post_status": TaskSpec("github", "bench_server.github.tasks:post_status"),
    "github.resend_statuses": TaskSpec("maintenance", "bench_server.github.tasks:resend_statuses"),
    "analysis.update": TaskSpec("analysis", "bench_server.analysis.tasks:update"),
    "analysis.reanalyse_project": TaskSpec("analysis", "bench_server.analysis.tasks:reanalyse_project"),
    "analysis.catch_up": TaskSpec("maintenance", "bench_server.analysis.tasks:catch_up"),
}
# The longest wait between two retries of a task, in seconds.
MAX_RETRY_DELAY_S = 300


@dataclass(frozen=True)
class Periodic:
    key: str
    task: str
    every_s: float
    # The embedded worker's first run, in seconds after the app started (default: every_s).
    first_after_s: float | None = None

    @property
    def first_run_s(self) -> float:
        return self.every_s if self.first_after_s is None else self.first_after_s


def periodic_tasks(settings: Settings) -> list[Periodic]:
    """What beat sends (and the embedded worker's tick runs), and how often."""
    return [
        # Embedded, the reaper starts with the API: no runner could renew a lease while the API
        # was down, so a restarted one gives them a full lease to renew or deliver first.
        Periodic(
            "reap-expired-leases",
            "jobs.reap_expired",
            settings.reaper_interval_s,
            first_after_s=max(settings.reaper_interval_s, settings.lease_seconds),
        ),
        Periodic("fan-out-stale-runs", "runs.fan_out_stale", settings.reaper_interval_s),
        Periodic(
            "mark-runners-offline",
            "runners.mark_offline",
            max(settings.reaper_interval_s, settings.runner_offline_after_s / 4),
        ),
        Periodic("resend-commit-statuses", "github.resend_statuses", settings.github_status_resend_after_s),
        Periodic("analyse-missed-batches", "analysis.catch_up", settings.analysis_catch_up_s),
    ]


def task_body(name: str) -> Callable[..., Any]:
    module, _, func = TASKS[name].body.partition(":")
    fn: Callable[..., Any] = getattr(importlib.import_module(module), func)
    return fn


def make_celery(settings: Settings) -> Celery:
    """A Celery app configured for these settings' broker, queues and beat schedule; no tasks
    declared (the worker declares them, `bench_server.worker`; a sender needs none)."""
    from celery import Celery
    from kombu import Queue  # type: ignore[attr-defined]  # kombu re-exports it without __all__

    app = Celery("bench_server", broker=settings.broker_url, backend=settings.result_backend)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=settings.result_backend is None,
        task_queues=[Queue(name) for name in QUEUES],  # type: ignore[no-untyped-call]
        task_default_queue="dispatch",
        task_create_missing_queues=False,
        task_routes={name: {"queue": spec.queue} for name, spec in TASKS.items()},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        beat_schedule={
            p.key: {"task": p.task, "schedule": timedelta(seconds=p.every_s)}
            for p in periodic_tasks(settings)
        },
    )
    return app
