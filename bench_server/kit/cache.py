"""A per-database cache for rows that never change once committed.

Metrics (their unit and direction are pinned at first ingest), hardware classes and
benchmarks (suite, name and params hash are their identity) are never updated or deleted, so
a lookup that found a committed row can be remembered for the life of the process. Only rows
found by a lookup are cached, never rows this transaction created: those could still roll back.
"""

from __future__ import annotations

import weakref
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

_CACHES: weakref.WeakKeyDictionary[Engine, dict[Any, Any]] = weakref.WeakKeyDictionary()


def immutable_rows(session: Session) -> dict[Any, Any]:
    """The cache of the database this session talks to."""
    return _CACHES.setdefault(session.get_bind().engine, {})
