"""Alerts (a series moved at a commit, or a benchmark started or stopped failing), incidents (every
alert of one suspect commit), their triage history, and annotations on the timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bench_server.models.base import Base, CreatedMixin, IdMixin, utcnow

ALERT_STATES = ("new", "acknowledged", "ignored", "fixed")
CHANGE_KINDS = ("regression", "improvement")
FAILURE_KINDS = ("starts_failing", "flaky", "recovered")
ALERT_KINDS = (*CHANGE_KINDS, *FAILURE_KINDS)
# What raised an alert: a change point of the default branch's history, the fast check of one
# commit (the newest commits of the default branch, or a pull request's commit against its
# merge-base), or the failures of a benchmark over commits.
DETECTORS = ("change_point", "check", "failures")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Incident(IdMixin, CreatedMixin, Base):
    """Every alert whose suspect is one commit, across benchmarks and hardware classes.

    The suspect range is (last_good_commit, commit]: the narrowest of its alerts' ranges, since
    the commit that caused all of them lies in each one.
    """

    __tablename__ = "incidents"
    __table_args__ = (
        UniqueConstraint("project_id", "commit_id"),
        CheckConstraint(_in("state", ALERT_STATES), name="state"),
    )

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    commit_id: Mapped[int] = mapped_column(ForeignKey("commits.id", ondelete="CASCADE"), index=True)
    last_good_commit_id: Mapped[int | None] = mapped_column(ForeignKey("commits.id", ondelete="SET NULL"))
    title: Mapped[str | None] = mapped_column(String(300))
    state: Mapped[str] = mapped_column(String(20), default="new")
    # Counts by kind, hardware classes, the largest relative change: what a listing shows.
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Alert(IdMixin, CreatedMixin, Base):
    """One series that moved at a commit. Unique per series, branch, kind and suspect commit, so
    analysing the same data again finds the same row."""

    __tablename__ = "alerts"
    __table_args__ = (
        CheckConstraint(_in("state", ALERT_STATES), name="state"),
        CheckConstraint(_in("kind", ALERT_KINDS), name="kind"),
        CheckConstraint(_in("detector", DETECTORS), name="detector"),
        UniqueConstraint("series_id", "branch", "kind", "first_bad_commit_id"),
        Index("ix_alerts_first_bad", "first_bad_commit_id"),
    )

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL"), index=True
    )
    # The default branch's series (a pull request's commit is judged against it).
    series_id: Mapped[int] = mapped_column(ForeignKey("analysis_series.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    detector: Mapped[str] = mapped_column(String(20))
    # The branch of the suspect commit's results: the default branch, or a pull request's.
    branch: Mapped[str] = mapped_column(String(200))
    suite: Mapped[str] = mapped_column(String(100))
    benchmark_id: Mapped[int | None] = mapped_column(ForeignKey("benchmarks.id"))
    metric_id: Mapped[int | None] = mapped_column(ForeignKey("metrics.id"))
    hardware_class_id: Mapped[int | None] = mapped_column(ForeignKey("hardware_classes.id"))
    # The suspect range: the last commit of the old level (for a pull request, its baseline on
    # the default branch) and the first commit of the new one.
    last_good_commit_id: Mapped[int | None] = mapped_column(ForeignKey("commits.id", ondelete="SET NULL"))
    first_bad_commit_id: Mapped[int | None] = mapped_column(ForeignKey("commits.id", ondelete="SET NULL"))
    # The commit that brought the level back (a regression) or made the benchmark pass again.
    fixed_by_commit_id: Mapped[int | None] = mapped_column(ForeignKey("commits.id", ondelete="SET NULL"))
    # after / before - 1, with its confidence interval, and the p-value of the test.
    relative_change: Mapped[float | None] = mapped_column(Float)
    ci_low: Mapped[float | None] = mapped_column(Float)
    ci_high: Mapped[float | None] = mapped_column(Float)
    p_value: Mapped[float | None] = mapped_column(Float)
    before_value: Mapped[float | None] = mapped_column(Float)
    after_value: Mapped[float | None] = mapped_column(Float)
    # Flaky benchmarks: the share of failing commits among the last failure_window.
    failure_rate: Mapped[float | None] = mapped_column(Float)
    failure_window: Mapped[int | None]
    state: Mapped[str] = mapped_column(String(20), default="new")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TriageEvent(IdMixin, CreatedMixin, Base):
    """One change of an incident's or an alert's state, or a note on it: who, when, from, to."""

    __tablename__ = "triage_events"
    __table_args__ = (CheckConstraint("(incident_id IS NULL) <> (alert_id IS NULL)", name="one_subject"),)

    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    # A token's name, or "analysis" for what the analysis decided itself.
    actor: Mapped[str] = mapped_column(String(200))
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id", ondelete="SET NULL"))
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)


class Annotation(IdMixin, CreatedMixin, Base):
    """A note on the timeline: a driver or OS change, a known-noisy period, a deploy."""

    __tablename__ = "annotations"

    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    commit_id: Mapped[int | None] = mapped_column(ForeignKey("commits.id", ondelete="CASCADE"))
    hardware_class_id: Mapped[int | None] = mapped_column(ForeignKey("hardware_classes.id"))
    machine_id: Mapped[int | None] = mapped_column(ForeignKey("machines.id"))
    kind: Mapped[str] = mapped_column(String(50), default="note")  # note | environment_change | deploy
    text: Mapped[str] = mapped_column(Text)
    # What changed, for annotations the analysis writes (e.g. the fingerprint keys that differ).
    details: Mapped[dict[str, Any] | None]
    # Set on annotations the analysis writes, so writing one again finds the same row.
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
