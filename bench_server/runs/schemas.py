from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class CommitInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parents: list[str] | None = Field(default=None, max_length=20)
    author: str | None = Field(default=None, max_length=200)
    message: str | None = Field(default=None, max_length=20_000)
    committed_at: datetime | None = None


class RunIn(BaseModel):
    """A trigger: benchmark this commit."""

    model_config = ConfigDict(extra="forbid")

    project: str = Field(min_length=1, max_length=100)
    sha: str = Field(pattern=r"^[0-9a-fA-F]{7,64}$")
    ref: str | None = Field(default=None, max_length=300, description="e.g. refs/heads/main")
    branch: str | None = Field(default=None, max_length=200, description="default: from ref")
    suites: list[str] | None = Field(
        default=None, max_length=100, description="default: the project's suites"
    )
    hardware_classes: list[str] | None = Field(
        default=None, max_length=100, description="default: every class with registered runners"
    )
    force: bool = Field(
        default=False, description="queue again even if a job for it is queued, running or done"
    )
    pull_request: int | None = Field(default=None, ge=1)
    priority: int | None = Field(default=None, ge=0, le=10_000, description="lower runs first")
    commit: CommitInfo | None = None


class RunOut(BaseModel):
    run_id: int
    project: str
    sha: str
    status_url: str


class SuitesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suites: list[str] = Field(min_length=1, max_length=100)
