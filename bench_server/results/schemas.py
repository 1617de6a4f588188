"""Request and response bodies of the results API. Field errors name the offending field."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bench_server.kit.inputs import LINE_PATTERN, MAX_INT64, TEXT_PATTERN, JsonObject
from bench_server.models import FAILURE_CLASSES

FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False)]
# Units whose values are durations: a negative one is a bug in the runner, never data.
DURATION_UNITS = frozenset({"ns", "us", "µs", "ms", "s", "min", "h"})
FailureClassName = Literal["setup", "engine_start", "timeout", "oom", "crash", "wrong_result", "runner_lost"]
assert set(FailureClassName.__args__) == set(FAILURE_CLASSES)  # type: ignore[attr-defined]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# Free-form objects (params, fingerprint, context) are plain JSON, key-sorted (kit/inputs.py).
FreeForm = JsonObject
# Names, keys and branches are one line of text; messages may span lines. Neither holds a
# control character (PostgreSQL refuses NUL in text at all).
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=LINE_PATTERN)]
Sha = Annotated[str, Field(pattern=r"^[0-9a-f]{7,64}$")]


def line(max_length: int, min_length: int = 1) -> Any:
    return Field(min_length=min_length, max_length=max_length, pattern=LINE_PATTERN)


def text(max_length: int, min_length: int = 0) -> Any:
    return Field(min_length=min_length, max_length=max_length, pattern=TEXT_PATTERN)


class CommitIn(Strict):
    sha: str = Field(pattern=r"^[0-9a-f]{7,64}$", description="Full or abbreviated hex commit id")
    branch: str | None = Field(default=None, min_length=1, max_length=200, pattern=LINE_PATTERN)
    parents: list[Sha] = Field(default_factory=list, max_length=64)
    author: str | None = Field(default=None, max_length=200, pattern=LINE_PATTERN)
    message: str | None = Field(default=None, max_length=20_000, pattern=TEXT_PATTERN)
    committed_at: datetime | None = None


class MachineIn(Strict):
    hardware_class: str = line(200)
    fingerprint: FreeForm = Field(default_factory=dict)
    hostname: str | None = Field(default=None, max_length=200, pattern=LINE_PATTERN)


class ResultIn(Strict):
    suite: str = line(100)
    benchmark: Name
    params: FreeForm = Field(default_factory=dict)
    metric: str = line(100)
    unit: str = line(50)
    direction: Literal["higher", "lower"]
    value: FiniteFloat
    samples: list[FiniteFloat] | None = Field(default=None, max_length=1_000_000)
    stats: dict[Annotated[str, Field(max_length=100, pattern=LINE_PATTERN)], FiniteFloat] | None = None

    @model_validator(mode="after")
    def _durations_are_not_negative(self) -> ResultIn:
        if self.unit in DURATION_UNITS:
            if self.value < 0:
                raise ValueError(f"value: a duration in {self.unit} cannot be negative ({self.value})")
            if self.samples and min(self.samples) < 0:
                raise ValueError(f"samples: a duration in {self.unit} cannot be negative")
        return self


class FailureIn(Strict):
    suite: str = line(100)
    benchmark: Name | None = None
    params: FreeForm = Field(default_factory=dict)
    failure_class: FailureClassName
    message: str = text(20_000, min_length=1)
    log_excerpt: str | None = Field(default=None, max_length=256_000, pattern=TEXT_PATTERN)


class IngestIn(Strict):
    idempotency_key: str = line(200)
    project: str = line(100)
    commit: CommitIn
    machine: MachineIn
    job_id: int | None = Field(default=None, gt=0, le=MAX_INT64)
    context: FreeForm = Field(default_factory=dict)
    results: list[ResultIn] = Field(default_factory=list, max_length=100_000)
    failures: list[FailureIn] = Field(default_factory=list, max_length=10_000)

    @field_validator("results")
    @classmethod
    def _one_metric_one_unit(cls, results: list[ResultIn]) -> list[ResultIn]:
        seen: dict[str, tuple[str, str]] = {}
        for i, r in enumerate(results):
            prev = seen.setdefault(r.metric, (r.unit, r.direction))
            if prev != (r.unit, r.direction):
                raise ValueError(
                    f"[{i}]: metric {r.metric!r} is given as {r.unit}/{r.direction} here and "
                    f"{prev[0]}/{prev[1]} earlier in the batch"
                )
        return results

    @model_validator(mode="after")
    def _not_empty(self) -> IngestIn:
        if not self.results and not self.failures:
            raise ValueError("results: an ingest batch needs at least one result or failure")
        return self


class IngestOut(BaseModel):
    batch_id: int
    duplicate: bool
    results: int
    failures: int


@dataclass(frozen=True)
class Poster:
    """Who posts a batch, as ingest needs to know it: the scope its idempotency keys live in, and
    the registered runner it is (results for a job come only from the runner holding the lease)."""

    key_scope: str
    runner_id: int | None

    @classmethod
    def of(cls, token_name: str, runner_id: int | None) -> Poster:
        # Keys belong to the client, not to its secret: a registered runner's to the runner, any
        # other token's to the token's name (given by the admin who created it). So a runner with
        # a new token, or a rotated ci token of the same name, still finds its own batches.
        return cls(f"runner:{runner_id}" if runner_id is not None else f"token:{token_name}", runner_id)


@dataclass(frozen=True)
class RowFilters:
    """The filters the results and failures listings share."""

    project: str | None
    branch: str | None
    commit: str | None  # a sha or a prefix of it
    suite: str | None
    benchmark: str | None
    hardware_class: str | None
    since: datetime | None
    until: datetime | None
