"""Bodies of the catalog's admin writes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from bench_server.kit.inputs import LINE_PATTERN, TEXT_PATTERN


class ProjectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$")
    name: str | None = Field(default=None, max_length=200, pattern=LINE_PATTERN)
    clone_url: str | None = Field(default=None, max_length=500, pattern=LINE_PATTERN)
    default_branch: str = Field(default="main", min_length=1, max_length=200, pattern=LINE_PATTERN)
    github_repo: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


class HardwareClassIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$")
    description: str | None = Field(default=None, max_length=500, pattern=TEXT_PATTERN)
    accelerators: int = Field(default=0, ge=0, le=100_000)


class HardwareCostsIn(BaseModel):
    """What one machine (or cluster) of the class draws and costs; null clears a figure."""

    model_config = ConfigDict(extra="forbid")

    power_w: float | None = Field(default=None, gt=0, le=10_000_000, description="watts under load")
    price_per_hour: float | None = Field(default=None, ge=0, le=1_000_000, description="dollars per hour")
