"""Projects, commits, hardware classes and machines: what results are about."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bench_server.models.base import Base, CreatedMixin, IdMixin


class Project(IdMixin, CreatedMixin, Base):
    __tablename__ = "projects"

    slug: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    clone_url: Mapped[str | None] = mapped_column(String(500))
    default_branch: Mapped[str] = mapped_column(String(200), default="main")
    # "owner/repo" on GitHub, for commit statuses and webhooks
    github_repo: Mapped[str | None] = mapped_column(String(200), index=True)
    # The suites a trigger runs when it names none (runner suite files by name); NULL means ["default"].
    suites: Mapped[list[Any] | None]


class Commit(IdMixin, CreatedMixin, Base):
    __tablename__ = "commits"
    __table_args__ = (
        UniqueConstraint("project_id", "sha"),
        Index("ix_commits_project_order", "project_id", "order_key"),
    )

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    sha: Mapped[str] = mapped_column(String(64))
    # The branch the commit was first reported on; results carry their own branch too.
    branch: Mapped[str | None] = mapped_column(String(200))
    parents: Mapped[list[Any]] = mapped_column(default=list)
    author: Mapped[str | None] = mapped_column(String(200))
    message: Mapped[str | None] = mapped_column(Text)
    committed_at: Mapped[datetime | None]
    # Position in first-parent history: parent's order_key + 1 when the first parent is known,
    # otherwise one past the newest commit of the project. Plots and detection sort by it.
    order_key: Mapped[int] = mapped_column(BigInteger, default=0)

    project: Mapped[Project] = relationship(lazy="raise")


class HardwareClass(IdMixin, CreatedMixin, Base):
    """A kind of machine (`h100-sxm`) or a cluster composition (`2x mac-studio-m3-ultra + 1x dgx-spark`)."""

    __tablename__ = "hardware_classes"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20), default="machine")  # machine | cluster
    description: Mapped[str | None] = mapped_column(String(500))
    accelerators: Mapped[int] = mapped_column(default=0)
    # For clusters: [{"class": "mac-studio-m3-ultra", "count": 2}, ...]
    members: Mapped[list[Any]] = mapped_column(default=list)
    # Set by an admin (PUT /api/v1/hardware/{name}/costs) for the website's per-watt and
    # per-dollar-hour comparisons; NULL where nobody configured them.
    power_w: Mapped[float | None] = mapped_column(Float)
    price_per_hour: Mapped[float | None] = mapped_column(Float)


class Machine(IdMixin, CreatedMixin, Base):
    """One concrete fingerprint (chip, memory, OS, driver, interconnect...) of a hardware class."""

    __tablename__ = "machines"

    hardware_class_id: Mapped[int] = mapped_column(ForeignKey("hardware_classes.id"), index=True)
    fingerprint: Mapped[dict[str, Any]] = mapped_column(default=dict)
    fingerprint_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hostname: Mapped[str | None] = mapped_column(String(200))
    last_seen_at: Mapped[datetime | None]

    hardware_class: Mapped[HardwareClass] = relationship(lazy="raise")
