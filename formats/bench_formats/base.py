"""Shared types for importers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .records import FailureRecord, ResultRecord


class ImportFormatError(ValueError):
    """The input is not (a parseable instance of) the named format."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class ImportOutcome:
    results: list[ResultRecord] = field(default_factory=list)
    failures: list[FailureRecord] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "results": [r.to_json() for r in self.results],
            "failures": [f.to_json() for f in self.failures],
            "meta": self.meta,
        }


def num(value: Any) -> float | None:
    """A finite float from JSON-ish values ("550", 1.5), else None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def merge_duplicates(records: list[ResultRecord]) -> list[ResultRecord]:
    """Records with the same benchmark, params and metric (re-runs in one file) become one record:
    value = mean of the values, samples = the values."""
    import json

    groups: dict[str, list[ResultRecord]] = {}
    order: list[str] = []
    for r in records:
        key = json.dumps([r.suite, r.benchmark, r.metric, r.params], sort_keys=True, default=str)
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(r)
    out = []
    for key in order:
        group = groups[key]
        if len(group) == 1:
            out.append(group[0])
            continue
        values = [g.value for g in group]
        first = group[0]
        out.append(
            ResultRecord(
                first.suite,
                first.benchmark,
                first.metric,
                sum(values) / len(values),
                first.unit,
                first.direction,
                dict(first.params),
                samples=values,
                stats={
                    "mean": sum(values) / len(values),
                    "min": min(values),
                    "max": max(values),
                    "n": float(len(values)),
                },
            )
        )
    return out
