"""The Celery worker's entry module.

    celery -A bench_server.worker worker -Q dispatch,maintenance,github,analysis
    celery -A bench_server.worker beat

`celery -A` looks up `bench_server.worker.app`; the app is built on that first access, from the
BENCH_* environment, so importing this module builds nothing and reads no settings. Every task
of `bench_server.tasks.TASKS` is declared with Celery's own retry options: a TransientError is
retried with exponential backoff and jitter (BENCH_TASK_RETRY_BASE_S, which Celery counts in whole
seconds, at least one; doubling, at most MAX_RETRY_DELAY_S apart) up to BENCH_TASK_MAX_RETRIES
times; any other exception fails the task at once.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from bench_server.kit.db import Database
from bench_server.kit.errors import TransientError
from bench_server.kit.outbox import AppContext
from bench_server.kit.settings import Settings, get_settings
from bench_server.tasks import MAX_RETRY_DELAY_S, TASKS, make_celery, task_body

if TYPE_CHECKING:
    from celery import Celery


@lru_cache
def worker_context() -> AppContext:
    """The worker's database and settings, from the BENCH_* environment."""
    return AppContext(Database.default(), get_settings())


def _declare(app: Celery, settings: Settings, name: str) -> None:
    def run(*args: Any) -> Any:
        return task_body(name)(worker_context(), *args)

    run.__name__ = name.replace(".", "_")
    app.task(
        name=name,
        acks_late=True,
        autoretry_for=(TransientError,),
        retry_backoff=settings.task_retry_base_s,
        retry_backoff_max=MAX_RETRY_DELAY_S,
        retry_jitter=True,
        max_retries=settings.task_max_retries,
    )(run)


@lru_cache
def celery_app() -> Celery:
    settings = get_settings()
    app = make_celery(settings)
    for name in TASKS:
        _declare(app, settings, name)
    return app


def __getattr__(name: str) -> Any:
    if name == "app":
        return celery_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
