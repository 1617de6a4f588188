"""One settings class, read from `BENCH_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

# Values a secret takes in examples and templates, never in a real deployment.
PLACEHOLDER_SECRETS = {
    "", "change-me", "changeme", "change_me", "changeit", "replace-me", "secret", "dev", "test",
    "password", "example", "xxx", "todo", "your-secret", "<secret>",
}  # fmt: skip


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
    # Secrets: SecretStr, so a logged or printed Settings shows "**********".
    github_webhook_secret: SecretStr = SecretStr("")
    github_api_url: str = "https://api.github.com"
    github_token: SecretStr = SecretStr("")
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
    # --- abuse limits (issue 12) ---
    # Writes (every non-GET under /api/v1) per client (its token, or its address without one):
    # a token bucket of `burst` refilled at `per_s`; over it the API answers 429 + Retry-After.
    # 0 turns a limit off. Each API process keeps its own buckets.
    rate_limit_writes_per_s: float = 50.0
    rate_limit_writes_burst: int = 500
    # The GitHub webhook, per sending address.
    rate_limit_webhook_per_s: float = 10.0
    rate_limit_webhook_burst: int = 100
    # Origins allowed to call the API from a browser (CORS), e.g. '["https://bench.example.org"]'.
    # Empty (the default): no cross-origin access at all.
    cors_origins: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> Settings:
        """Production refuses placeholder secrets; development (the demo) and tests take any."""
        if self.environment != "production":
            return self
        if self.database_url.startswith("sqlite"):
            raise ValueError("BENCH_DATABASE_URL must name a PostgreSQL database in production")
        if _is_placeholder(self.github_webhook_secret.get_secret_value()):
            raise ValueError("BENCH_GITHUB_WEBHOOK_SECRET must be set to a real secret in production")
        token = self.github_token.get_secret_value()
        if token and _is_placeholder(token):  # no token: statuses are simply not posted
            raise ValueError("BENCH_GITHUB_TOKEN is a placeholder; set a real token or leave it empty")
        for name, url in (
            ("BENCH_DATABASE_URL", self.database_url),
            ("BENCH_BROKER_URL", self.broker_url),
            ("BENCH_RESULT_BACKEND", self.result_backend or ""),
        ):
            password = make_url(url).password if "://" in url else None
            if password is not None and _is_placeholder(str(password)):
                raise ValueError(f"{name} has a placeholder password")
        return self

    def __repr_args__(self) -> Any:
        # URLs may carry passwords: a printed Settings shows them masked.
        for name, value in super().__repr_args__():
            yield name, _mask_password(value) if name in _URL_FIELDS and isinstance(value, str) else value


_URL_FIELDS = {"database_url", "broker_url", "result_backend"}


def _is_placeholder(secret: str) -> bool:
    return secret.strip().lower() in PLACEHOLDER_SECRETS


def _mask_password(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True) if "://" in url else url
    except ArgumentError:
        return url


@lru_cache
def get_settings() -> Settings:
    return Settings()
