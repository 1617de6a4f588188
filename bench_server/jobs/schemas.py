from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bench_server.kit.inputs import LINE_PATTERN, TEXT_PATTERN


class FinishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: Literal["succeeded", "failed"]
    failure_class: str | None = Field(default=None, max_length=20, pattern=LINE_PATTERN)
    message: str | None = Field(default=None, max_length=10_000, pattern=TEXT_PATTERN)


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=1000, pattern=TEXT_PATTERN)


class LeaseOut(BaseModel):
    id: int
    state: str
    lease_expires_at: datetime | None


@dataclass(frozen=True)
class JobFilters:
    """The filters of the jobs listing."""

    states: list[str] | None
    project: str | None
    sha: str | None  # a sha or a prefix of it
    suite: str | None
    hardware_class: str | None
    runner: str | None
    run_id: int | None
