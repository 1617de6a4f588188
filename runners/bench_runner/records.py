"""The records a runner posts to the results store.

These mirror the server's ingest schema (`POST /api/v1/results`). Every benchmark
module produces `ResultRecord`s and `FailureRecord`s; the HTTP client batches them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Direction = Literal["higher", "lower"]
FailureClass = Literal["setup", "engine_start", "timeout", "oom", "crash", "wrong_result", "runner_lost"]
FAILURE_CLASSES: tuple[str, ...] = (
    "setup",
    "engine_start",
    "timeout",
    "oom",
    "crash",
    "wrong_result",
    "runner_lost",
)


@dataclass
class ResultRecord:
    """One metric value of one benchmark (a benchmark is suite + name + params)."""

    suite: str
    benchmark: str
    metric: str
    value: float
    unit: str
    direction: Direction
    params: dict[str, Any] = field(default_factory=dict)
    samples: list[float] | None = None
    stats: dict[str, float] | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.value):
            raise ValueError(f"{self.benchmark}/{self.metric}: value must be finite, got {self.value}")

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class FailureRecord:
    """A benchmark that did not produce numbers, and why."""

    suite: str
    benchmark: str | None
    failure_class: FailureClass
    message: str
    params: dict[str, Any] = field(default_factory=dict)
    log_excerpt: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}
