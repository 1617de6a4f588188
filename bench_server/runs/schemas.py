from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from bench_server.kit.inputs import LINE_PATTERN, TEXT_PATTERN

# Text the database stores: no control characters (PostgreSQL refuses NUL in text).
ShortLine = Annotated[str, Field(max_length=200, pattern=LINE_PATTERN)]


class CommitInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parents: list[Annotated[str, Field(pattern=r"^[0-9a-fA-F]{7,64}$")]] | None = Field(
        default=None, max_length=20
    )
    author: str | None = Field(default=None, max_length=200, pattern=LINE_PATTERN)
    message: str | None = Field(default=None, max_length=20_000, pattern=TEXT_PATTERN)
    committed_at: datetime | None = None


class RunIn(BaseModel):
    """A trigger: benchmark this commit."""

    model_config = ConfigDict(extra="forbid")

    project: str = Field(min_length=1, max_length=100, pattern=LINE_PATTERN)
    sha: str = Field(pattern=r"^[0-9a-fA-F]{7,64}$")
    ref: str | None = Field(
        default=None, max_length=300, pattern=LINE_PATTERN, description="e.g. refs/heads/main"
    )
    branch: str | None = Field(
        default=None, max_length=200, pattern=LINE_PATTERN, description="default: from ref"
    )
    suites: list[ShortLine] | None = Field(
        default=None, max_length=100, description="default: the project's suites"
    )
    hardware_classes: list[ShortLine] | None = Field(
        default=None, max_length=100, description="default: every class with registered runners"
    )
    force: bool = Field(
        default=False, description="queue again even if a job for it is queued, running or done"
    )
    pull_request: int | None = Field(default=None, ge=1, le=2**31 - 1)
    priority: int | None = Field(default=None, ge=0, le=10_000, description="lower runs first")
    commit: CommitInfo | None = None


class RunOut(BaseModel):
    run_id: int
    project: str
    sha: str
    status_url: str


class SuitesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suites: list[ShortLine] = Field(min_length=1, max_length=100)
