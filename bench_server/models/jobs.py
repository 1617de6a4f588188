"""Runners, API tokens, runs (triggers), jobs, GitHub webhook deliveries and the commit statuses
GitHub has acknowledged."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from bench_server.models.base import Base, CreatedMixin, IdMixin, utcnow

JOB_STATES = ("queued", "claimed", "running", "succeeded", "failed", "cancelled", "timed_out")
ACTIVE_JOB_STATES = ("queued", "claimed", "running")
HELD_JOB_STATES = ("claimed", "running")
FINAL_JOB_STATES = ("succeeded", "failed", "cancelled", "timed_out")
# Entering one of these is reported to GitHub as a commit status.
REPORTED_JOB_STATES = ("running", *FINAL_JOB_STATES)
# At most one active, unforced job per commit x suite x hardware class (the fan-out's DB guard).
ACTIVE_UNFORCED = text("state IN ('queued', 'claimed', 'running') AND forced = false")
TOKEN_SCOPES = ("runner", "ci", "admin", "register", "triage")


class Runner(IdMixin, CreatedMixin, Base):
    __tablename__ = "runners"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    hardware_class_id: Mapped[int] = mapped_column(ForeignKey("hardware_classes.id"), index=True)
    machine_id: Mapped[int | None] = mapped_column(ForeignKey("machines.id"))
    labels: Mapped[list[Any]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(20), default="online")  # online | offline | disabled
    last_heartbeat_at: Mapped[datetime | None]


class ApiToken(IdMixin, CreatedMixin, Base):
    """A bearer token. Only its sha256 is stored; the prefix helps people tell tokens apart."""

    __tablename__ = "api_tokens"

    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list[Any]] = mapped_column(default=list)
    runner_id: Mapped[int | None] = mapped_column(ForeignKey("runners.id", ondelete="CASCADE"), index=True)
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class Run(IdMixin, CreatedMixin, Base):
    """One trigger for one commit (API, webhook or CLI), fanned out into jobs."""

    __tablename__ = "runs"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    commit_id: Mapped[int] = mapped_column(ForeignKey("commits.id", ondelete="CASCADE"), index=True)
    ref: Mapped[str | None] = mapped_column(String(300))
    source: Mapped[str] = mapped_column(String(20), default="api")  # api | webhook | cli
    suites: Mapped[list[Any] | None]
    hardware_classes: Mapped[list[Any] | None]
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    pull_request: Mapped[int | None]
    fanned_out_at: Mapped[datetime | None]
    # Priority of its jobs (lower first); NULL: from the ref (default branch, branch, pull request).
    priority: Mapped[int | None]


class Job(IdMixin, CreatedMixin, Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(
            "state IN ('queued', 'claimed', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out')",
            name="state",
        ),
        # The claim query: queued jobs of one hardware class, best priority first, oldest first.
        Index("ix_jobs_claim", "state", "hardware_class_id", "priority", "id"),
        Index("ix_jobs_lease", "state", "lease_expires_at"),
        Index("ix_jobs_identity", "project_id", "commit_id", "suite", "hardware_class_id"),
        Index(
            "uq_jobs_active_identity",
            "project_id",
            "commit_id",
            "suite",
            "hardware_class_id",
            unique=True,
            postgresql_where=ACTIVE_UNFORCED,
            sqlite_where=ACTIVE_UNFORCED,
        ),
    )

    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    commit_id: Mapped[int] = mapped_column(ForeignKey("commits.id", ondelete="CASCADE"))
    branch: Mapped[str | None] = mapped_column(String(200))
    suite: Mapped[str] = mapped_column(String(100))
    hardware_class_id: Mapped[int] = mapped_column(ForeignKey("hardware_classes.id"))
    state: Mapped[str] = mapped_column(String(20), default="queued")
    # Lower runs first: main before pull requests.
    priority: Mapped[int] = mapped_column(default=100)
    attempt: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    runner_id: Mapped[int | None] = mapped_column(ForeignKey("runners.id", ondelete="SET NULL"), index=True)
    lease_expires_at: Mapped[datetime | None]
    failure_class: Mapped[str | None] = mapped_column(String(20))
    message: Mapped[str | None] = mapped_column(Text)
    log: Mapped[str | None] = mapped_column(Text)
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    claimed_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class WebhookDelivery(IdMixin, CreatedMixin, Base):
    """Deliveries already handled, so a redelivery creates nothing new: by `X-GitHub-Delivery`,
    and by what the event says (a replayed body under a fresh delivery id is the same event)."""

    __tablename__ = "webhook_deliveries"

    delivery_id: Mapped[str] = mapped_column(String(100), unique=True)
    # sha256 of the event's identity (push: repository, ref, before and after; pull request:
    # repository, number, action and head sha); NULL for deliveries stored before revision 0007.
    event_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    event: Mapped[str] = mapped_column(String(50))
    action: Mapped[str | None] = mapped_column(String(50))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))


class GithubStatus(Base):
    """The job state GitHub last acknowledged as the job's commit status (a 2xx, or a 4xx that no
    retry can fix). A job in a reported state with no row for that state has a status still to
    deliver: beat's `github.resend_statuses` posts it again."""

    __tablename__ = "github_statuses"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    job_state: Mapped[str] = mapped_column(String(20))
    # GitHub's answer; NULL for the rows the migration wrote for jobs reported before it.
    http_status: Mapped[int | None]
    reported_at: Mapped[datetime] = mapped_column(default=utcnow)
