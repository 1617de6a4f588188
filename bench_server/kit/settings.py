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
