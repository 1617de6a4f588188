"""Series as the detector sees them, built from result rows; and the stored form of change points.

Pure: rows in (already in first-parent order, as `history.service.series_values` returns them),
arrays and dicts out.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from bench_server.analysis.detector import ChangeKind, ChangePoint

K = TypeVar("K", bound=Hashable)


@dataclass
class SeriesPoints:
    """One series: its commits in first-parent order, each with every sample it has (one per
    result: repeats, several runners of one fingerprint)."""

    commit_ids: list[int] = field(default_factory=list)
    order_keys: list[int] = field(default_factory=list)
    samples: list[NDArray[np.float64]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.commit_ids)

    def prefix_hash(self, length: int) -> str | None:
        """A fingerprint of the first `length` commits and their samples; None past the end."""
        if length > len(self):
            return None
        digest = hashlib.sha256()
        digest.update(np.asarray(self.commit_ids[:length], dtype=np.int64).tobytes())
        digest.update(np.asarray([s.size for s in self.samples[:length]], dtype=np.int64).tobytes())
        for s in self.samples[:length]:
            digest.update(s.tobytes())
        return digest.hexdigest()

    def position(self) -> dict[int, int]:
        return {c: i for i, c in enumerate(self.commit_ids)}


def group_rows(rows: Iterable[tuple[K, int, int, float]]) -> dict[K, SeriesPoints]:
    """(series key, commit id, order key, value) rows, in first-parent order, into series."""
    building: dict[K, tuple[SeriesPoints, list[list[float]]]] = {}
    for key, commit_id, order_key, value in rows:
        entry = building.get(key)
        if entry is None:
            entry = building[key] = (SeriesPoints(), [])
        points, values = entry
        if not points.commit_ids or points.commit_ids[-1] != commit_id:
            points.commit_ids.append(commit_id)
            points.order_keys.append(order_key)
            values.append([])
        values[-1].append(float(value))
    out: dict[K, SeriesPoints] = {}
    for key, (points, values) in building.items():
        points.samples = [np.asarray(v, dtype=np.float64) for v in values]
        out[key] = points
    return out


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def change_point_to_json(cp: ChangePoint) -> dict[str, Any]:
    """JSON-safe (PostgreSQL's JSONB has no NaN): non-finite numbers are stored as null."""
    out: dict[str, Any] = {}
    for f in fields(cp):
        value = getattr(cp, f.name)
        if isinstance(value, ChangeKind):
            out[f.name] = value.value
        elif isinstance(value, float):
            out[f.name] = _finite_or_none(value)
        else:
            out[f.name] = value
    return out


def change_point_from_json(data: dict[str, Any]) -> ChangePoint:
    def number(name: str) -> float:
        value = data.get(name)
        return math.nan if value is None else float(value)

    return ChangePoint(
        index=int(data["index"]),
        before_level=number("before_level"),
        after_level=number("after_level"),
        relative_change=number("relative_change"),
        ci_low=number("ci_low"),
        ci_high=number("ci_high"),
        p_value=number("p_value"),
        kind=ChangeKind(data["kind"]),
        before_points=int(data["before_points"]),
        after_points=int(data["after_points"]),
    )
