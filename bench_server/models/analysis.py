"""What the analysis remembers between runs: each series' state, per-project settings, and which
ingest batches it has seen."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bench_server.models.base import Base, CreatedMixin, IdMixin, utcnow

SERIES_KINDS = ("metric", "failures")


class AnalysisSeries(IdMixin, CreatedMixin, Base):
    """One comparability key of the default branch and what its last analysis found.

    `metric`: one metric of one benchmark on one hardware class and machine fingerprint (a new
    fingerprint starts a new series, so a driver update is never blamed on a commit).
    `failures`: whether one benchmark (or, with no benchmark, a whole suite) on one hardware
    class ran or failed, commit after commit.
    """

    __tablename__ = "analysis_series"
    __table_args__ = (
        CheckConstraint("kind IN ('metric', 'failures')", name="kind"),
        Index("ix_analysis_series_group", "project_id", "hardware_class_id", "benchmark_id"),
    )

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    # sha256 of the key's fields: the one unique handle, whichever of them are NULL.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    branch: Mapped[str] = mapped_column(String(200))
    hardware_class_id: Mapped[int] = mapped_column(ForeignKey("hardware_classes.id"))
    suite: Mapped[str] = mapped_column(String(100))
    benchmark_id: Mapped[int | None] = mapped_column(ForeignKey("benchmarks.id"))
    metric_id: Mapped[int | None] = mapped_column(ForeignKey("metrics.id"))
    machine_id: Mapped[int | None] = mapped_column(ForeignKey("machines.id"))
    fingerprint_hash: Mapped[str | None] = mapped_column(String(64))
    # The first `analysed_length` commits were analysed with the settings of `settings_hash`;
    # `prefix_hash` fingerprints their samples, so a late result for an old commit is noticed
    # and the series analysed again from scratch. Change points as the detector returned them.
    analysed_length: Mapped[int] = mapped_column(default=0)
    prefix_hash: Mapped[str | None] = mapped_column(String(64))
    settings_hash: Mapped[str | None] = mapped_column(String(64))
    change_points: Mapped[list[Any]] = mapped_column(default=list)
    analysed_at: Mapped[datetime | None]


class AnalysisSettings(IdMixin, CreatedMixin, Base):
    """Detector settings a project overrides: for every metric (`metric` = '*') or for one."""

    __tablename__ = "analysis_settings"
    __table_args__ = (UniqueConstraint("project_id", "metric"),)

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(100))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AnalysedBatch(Base):
    """An ingest batch whose `analysis.update` finished; beat re-sends the task for recent
    batches without a row (their task was lost with the broker)."""

    __tablename__ = "analysed_batches"

    batch_id: Mapped[int] = mapped_column(
        ForeignKey("ingest_batches.id", ondelete="CASCADE"), primary_key=True
    )
    analysed_at: Mapped[datetime] = mapped_column(default=utcnow)
