"""Engine and session handling. Only the request or task boundary commits, and it commits here:
`Database.transaction()` (tasks, the CLI, the request's session in `kit/deps.py`) and
`end_transaction()` (a long-poll's own boundaries)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from bench_server.kit.settings import get_settings


def normalise_url(url: str) -> str:
    """Accept plain `postgresql://` URLs and use the psycopg 3 driver for them."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, pool_pre_ping=True, **kwargs)


@lru_cache
def _default_engine() -> Engine:
    return make_engine(get_settings().database_url)


class Database:
    """Holds the engine and session factories of one application instance."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessionmaker = sessionmaker(engine, expire_on_commit=False, autoflush=False)
        # PostgreSQL: every transaction of a read-only session is BEGIN READ ONLY (psycopg's
        # read_only flag; the pool resets it when the connection comes back), so a write fails.
        # SQLite has no read-only transactions; there the session is read-only by convention.
        readers = (
            engine.execution_options(postgresql_readonly=True)
            if engine.dialect.name == "postgresql"
            else engine
        )
        self._read_sessionmaker = sessionmaker(readers, expire_on_commit=False, autoflush=False)

    @classmethod
    def from_url(cls, url: str) -> Database:
        return cls(make_engine(url))

    @classmethod
    def default(cls) -> Database:
        return cls(_default_engine())

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A unit of work: commits if the block succeeds, rolls back if it raises."""
        session = self.sessionmaker()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def read_only(self) -> Iterator[Session]:
        """A session for reads: a READ ONLY transaction on PostgreSQL, never committed."""
        session = self._read_sessionmaker()
        try:
            yield session
        finally:
            # close() ends the transaction without expiring loaded objects, so callers may
            # still read the rows they fetched.
            session.close()


def end_transaction(session: Session) -> None:
    """Commit the session's transaction now and hand its connection back to the pool.

    For a request that is a series of short units of work (the claim long-poll: each look at the
    queue is one), so that no connection is held while it waits. The session's next statement
    begins a new transaction; the request's own boundary commits the last one.
    """
    session.commit()
