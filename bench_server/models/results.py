"""Benchmarks, metrics, ingest batches, results and failures."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bench_server.models.base import Base, BigId, CreatedMixin, IdMixin, utcnow

DIRECTIONS = ("higher", "lower")
FAILURE_CLASSES = ("setup", "engine_start", "timeout", "oom", "crash", "wrong_result", "runner_lost")


class Benchmark(IdMixin, CreatedMixin, Base):
    """A workload: suite + name + parameters (model, ISL/OSL, concurrency, message size...)."""

    __tablename__ = "benchmarks"
    __table_args__ = (UniqueConstraint("suite", "name", "params_hash"),)

    suite: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    params_hash: Mapped[str] = mapped_column(String(64))


class Metric(IdMixin, CreatedMixin, Base):
    __tablename__ = "metrics"
    __table_args__ = (CheckConstraint("direction IN ('higher', 'lower')", name="direction"),)

    name: Mapped[str] = mapped_column(String(100), unique=True)
    unit: Mapped[str] = mapped_column(String(50))
    direction: Mapped[str] = mapped_column(String(10))


# The key scope of batches stored before keys were scoped (revision 0007): their keys stay global.
LEGACY_KEY_SCOPE = "legacy"


class IngestBatch(IdMixin, CreatedMixin, Base):
    """One accepted POST of results: the unit of idempotency."""

    __tablename__ = "ingest_batches"
    # A key is unique within its poster's scope ("runner:<id>" or "token:<token name>"), so another
    # token posting first under a runner's predictable key cannot block that runner's batch.
    __table_args__ = (UniqueConstraint("key_scope", "idempotency_key"),)

    key_scope: Mapped[str] = mapped_column(String(210))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    # sha256 of the canonical request body: the same key with another body is a conflict.
    body_hash: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    commit_id: Mapped[int] = mapped_column(ForeignKey("commits.id", ondelete="CASCADE"), index=True)
    machine_id: Mapped[int] = mapped_column(ForeignKey("machines.id"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), index=True)
    branch: Mapped[str | None] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(50), default="api")  # api | import:<format>
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    n_results: Mapped[int] = mapped_column(default=0)
    n_failures: Mapped[int] = mapped_column(default=0)


class Result(Base):
    __tablename__ = "results"
    __table_args__ = (
        # The comparability key, in the order the series query filters on it.
        Index(
            "ix_results_series",
            "project_id",
            "benchmark_id",
            "metric_id",
            "hardware_class_id",
            "branch",
            "commit_id",
            # On PostgreSQL the series query becomes an index-only scan.
            postgresql_include=["id", "value"],
        ),
        Index("ix_results_commit", "commit_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("ingest_batches.id", ondelete="CASCADE"), index=True)
    # Results are the one large, append-only table. Its only foreign key is batch_id, which
    # owns the rows (deleting a batch, or its project, removes them). The other ids are written
    # by ingest alone, in the same transaction that looked them up or created them:
    # project, commit, branch, machine, hardware class and job are copies of the batch's (which
    # carries foreign keys for them); benchmarks and metrics are never deleted. A foreign key
    # check per row per column cost more than the insert itself (measured: a 1,000-value COPY
    # took 92 ms with eight keys, 52 ms with three, 18 ms with none).
    project_id: Mapped[int] = mapped_column(BigId)
    commit_id: Mapped[int] = mapped_column(BigId)
    branch: Mapped[str | None] = mapped_column(String(200))
    machine_id: Mapped[int] = mapped_column(BigId)
    hardware_class_id: Mapped[int] = mapped_column(BigId)
    benchmark_id: Mapped[int] = mapped_column(BigId)
    metric_id: Mapped[int] = mapped_column(BigId)
    job_id: Mapped[int | None] = mapped_column(BigId)
    value: Mapped[float] = mapped_column(Float)
    samples: Mapped[list[Any] | None]
    stats: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Failure(IdMixin, CreatedMixin, Base):
    """A benchmark that produced no numbers: a first-class row, never a missing value."""

    __tablename__ = "failures"
    __table_args__ = (
        CheckConstraint(
            "failure_class IN ('setup', 'engine_start', 'timeout', 'oom', 'crash', 'wrong_result', "
            "'runner_lost')",
            name="failure_class",
        ),
        Index("ix_failures_commit", "commit_id"),
    )

    batch_id: Mapped[int | None] = mapped_column(
        ForeignKey("ingest_batches.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    commit_id: Mapped[int] = mapped_column(ForeignKey("commits.id", ondelete="CASCADE"))
    branch: Mapped[str | None] = mapped_column(String(200))
    machine_id: Mapped[int | None] = mapped_column(ForeignKey("machines.id"))
    hardware_class_id: Mapped[int] = mapped_column(ForeignKey("hardware_classes.id"))
    benchmark_id: Mapped[int | None] = mapped_column(ForeignKey("benchmarks.id"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), index=True)
    suite: Mapped[str] = mapped_column(String(100))
    failure_class: Mapped[str] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(Text)
    log_excerpt: Mapped[str | None] = mapped_column(Text)
