from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from bench_server.kit.inputs import LINE_PATTERN, JsonObject


class RegisterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$")
    hardware_class: str = Field(min_length=1, max_length=200, pattern=LINE_PATTERN)
    labels: list[Annotated[str, Field(max_length=100, pattern=LINE_PATTERN)]] = Field(
        default_factory=list, max_length=50
    )
    fingerprint: JsonObject = Field(default_factory=dict)
    hostname: str | None = Field(default=None, max_length=200, pattern=LINE_PATTERN)


class RegisterOut(BaseModel):
    runner_id: int
    token: str
    hardware_class: str


class HeartbeatIn(BaseModel):
    """A heartbeat says only that the runner is alive (an empty object). Which job a runner holds
    the server knows from its claims and leases; GET /runners shows it as current_job_id."""

    model_config = ConfigDict(extra="forbid")


class HeartbeatOut(BaseModel):
    status: str
