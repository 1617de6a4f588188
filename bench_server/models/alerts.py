"""Alerts (a series moved at a commit), incidents (series that moved together) and annotations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Float, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bench_server.models.base import Base, CreatedMixin, IdMixin, utcnow

ALERT_STATES = ("new", "acknowledged", "ignored", "fixed")


class Incident(IdMixin, CreatedMixin, Base):
    __tablename__ = "incidents"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    commit_id: Mapped[int] = mapped_column(ForeignKey("commits.id", ondelete="CASCADE"), index=True)
    title: Mapped[str | None] = mapped_column(String(300))


class Alert(IdMixin, CreatedMixin, Base):
    __tablename__ = "alerts"
    __table_args__ = (
        CheckConstraint("state IN ('new', 'acknowledged', 'ignored', 'fixed')", name="state"),
        CheckConstraint("kind IN ('regression', 'improvement', 'failure')", name="kind"),
    )

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))
    branch: Mapped[str | None] = mapped_column(String(200))
    benchmark_id: Mapped[int | None] = mapped_column(ForeignKey("benchmarks.id"))
    metric_id: Mapped[int | None] = mapped_column(ForeignKey("metrics.id"))
    hardware_class_id: Mapped[int | None] = mapped_column(ForeignKey("hardware_classes.id"))
    # The suspect range: the last commit that looked good and the first that looked bad.
    last_good_commit_id: Mapped[int | None] = mapped_column(ForeignKey("commits.id", ondelete="SET NULL"))
    first_bad_commit_id: Mapped[int | None] = mapped_column(ForeignKey("commits.id", ondelete="SET NULL"))
    magnitude: Mapped[float | None] = mapped_column(Float)  # relative change, signed
    significance: Mapped[float | None] = mapped_column(Float)  # p-value or score of the detector
    state: Mapped[str] = mapped_column(String(20), default="new")
    notes: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Annotation(IdMixin, CreatedMixin, Base):
    """A note on the timeline: a driver or OS change, a known-noisy period, a deploy."""

    __tablename__ = "annotations"

    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    commit_id: Mapped[int | None] = mapped_column(ForeignKey("commits.id", ondelete="CASCADE"))
    hardware_class_id: Mapped[int | None] = mapped_column(ForeignKey("hardware_classes.id"))
    machine_id: Mapped[int | None] = mapped_column(ForeignKey("machines.id"))
    kind: Mapped[str] = mapped_column(String(50), default="note")  # note | environment_change | deploy
    text: Mapped[str] = mapped_column(Text)
