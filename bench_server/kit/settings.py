"""One settings class, read from `BENCH_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"", "change-me", "changeme", "secret", "dev"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BENCH_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    # SQLite is the embedded default; production sets a PostgreSQL URL
    # (postgresql+psycopg://user@host/db).
    database_url: str = "sqlite:///./bench.db"
    # Celery broker. "memory://" runs tasks in-process (the embedded task transport);
    # production uses redis://.
    broker_url: str = "memory://"
    result_backend: str | None = None
    # Largest request body accepted by the API, in bytes.
    max_body_bytes: int = 10 * 1024 * 1024
    # Largest page a listing returns.
    max_page_size: int = 1000
    github_webhook_secret: str = ""
    github_api_url: str = "https://api.github.com"
    github_token: str = ""
    public_url: str = "http://127.0.0.1:8000"
    # --- jobs and runners (issue 4) ---
    # A claimed job's lease; runners renew it every lease_seconds/3. An expired lease is requeued.
    lease_seconds: int = 300
    # Jobs are retried on a lost lease up to max_attempts claims, then failed as runner_lost.
    max_attempts: int = 3
    # A running job is timed_out after this long even if its lease is renewed.
    job_timeout_s: float = 6 * 3600
    # Longest long-poll a claim may ask for, and how often a waiting claim looks at the queue.
    claim_max_wait_s: float = 60.0
    claim_poll_interval_s: float = 0.5
    # A runner silent for this long is marked offline.
    runner_offline_after_s: float = 120.0
    # How often beat (or, embedded, the in-process worker's tick) runs the lease reaper, the
    # sweep of runs whose fan-out was lost, and the offline sweep.
    reaper_interval_s: float = 15.0
    # The job log keeps only its last bytes.
    job_log_max_bytes: int = 256 * 1024
    # Priorities (lower runs first): default-branch pushes, other branches, pull requests.
    priority_default_branch: int = 10
    priority_branch: int = 50
    priority_pull_request: int = 100
    # GitHub commit statuses: "<context>/<suite>/<hardware class>".
    github_status_context: str = "bench"
    github_timeout_s: float = 10.0
    # A job whose state has not reached GitHub this long after it changed (its post exhausted
    # its retries) is posted again; beat looks for such jobs this often.
    github_status_resend_after_s: float = 600.0
    # --- analysis ---
    # Beat re-sends `analysis.update` for batches ingested more than this long ago (within a day)
    # whose analysis never finished, and looks for them this often.
    analysis_catch_up_s: float = 300.0
    # --- background tasks ---
    # A task failing with a TransientError is retried up to this many times, the first retry
    # after task_retry_base_s, doubling each time, at most five minutes apart.
    task_max_retries: int = 5
    task_retry_base_s: float = 2.0

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> Settings:
        if self.environment == "production":
            if self.database_url.startswith("sqlite"):
                raise ValueError("BENCH_DATABASE_URL must name a PostgreSQL database in production")
            if self.github_webhook_secret in PLACEHOLDER_SECRETS:
                raise ValueError("BENCH_GITHUB_WEBHOOK_SECRET must be set to a real secret in production")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
