"""Picking records out of an ImportOutcome in the importer tests."""

from __future__ import annotations

from typing import Any

from bench_formats import ImportOutcome


def values(outcome: ImportOutcome, metric: str, **params: Any) -> list[float]:
    """The values of `metric` among the records whose params include `params`."""
    return [
        r.value
        for r in outcome.results
        if r.metric == metric and all(r.params.get(k) == v for k, v in params.items())
    ]


def one(outcome: ImportOutcome, metric: str, **params: Any) -> float:
    """The value of the one record of `metric` with `params`."""
    found = values(outcome, metric, **params)
    assert len(found) == 1, (metric, params, found)
    return found[0]
