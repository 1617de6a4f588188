"""The series catalog: one row per comparability key that has results, kept up to date by ingest.

Listing series from here costs a scan of this small table, never a DISTINCT over results (a full
scan at a million rows). The columns are what the website's index and overview show without
touching results: where the series starts and ends, its latest value and how many commits it has.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bench_server.models.base import Base, CreatedMixin, IdMixin, utcnow


class Series(IdMixin, CreatedMixin, Base):
    __tablename__ = "series"
    __table_args__ = (
        # The comparability key (as results' ix_results_series orders it, branch last).
        UniqueConstraint(
            "project_id", "benchmark_id", "metric_id", "hardware_class_id", "branch", name="uq_series_key"
        ),
        Index("ix_series_project_hardware", "project_id", "branch", "hardware_class_id"),
        Index("ix_series_project_metric", "project_id", "branch", "metric_id"),
    )

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    branch: Mapped[str] = mapped_column(String(200))
    benchmark_id: Mapped[int] = mapped_column(ForeignKey("benchmarks.id"))
    metric_id: Mapped[int] = mapped_column(ForeignKey("metrics.id"))
    hardware_class_id: Mapped[int] = mapped_column(ForeignKey("hardware_classes.id"))
    # First and last commit in first-parent order (their order keys, copied, so that ingest can
    # compare without a join).
    first_commit_id: Mapped[int] = mapped_column(ForeignKey("commits.id", ondelete="CASCADE"))
    first_order_key: Mapped[int] = mapped_column(BigInteger)
    last_commit_id: Mapped[int] = mapped_column(ForeignKey("commits.id", ondelete="CASCADE"))
    last_order_key: Mapped[int] = mapped_column(BigInteger)
    # The mean of the results at the last commit, and how many results that mean is over.
    last_value: Mapped[float] = mapped_column(Float)
    last_n: Mapped[int]
    # Commits with at least one result (the series' points), and results in all.
    point_count: Mapped[int]
    result_count: Mapped[int]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
