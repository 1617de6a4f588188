"""Projects and hardware classes an admin registers (with a class's power and price), and the
catalog listings."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from bench_server.catalog import repository as repo
from bench_server.catalog.schemas import HardwareClassIn, HardwareCostsIn, ProjectIn
from bench_server.kit.errors import Conflict, NotFound
from bench_server.kit.paging import Listing
from bench_server.models import HardwareClass, Project


def create_project(session: Session, body: ProjectIn) -> dict[str, Any]:
    if repo.project_exists(session, body.slug):
        raise Conflict(f"project {body.slug!r} exists")
    project = Project(**body.model_dump(exclude={"name"}), name=body.name or body.slug)
    repo.add(session, project)
    return {c: getattr(project, c) for c in repo.PROJECT_COLUMNS}


def create_hardware_class(session: Session, body: HardwareClassIn) -> dict[str, Any]:
    if repo.hardware_class_exists(session, body.name):
        raise Conflict(f"hardware class {body.name!r} exists")
    hw = HardwareClass(**body.model_dump(), kind="machine", members=[])
    repo.add(session, hw)
    return {c: getattr(hw, c) for c in repo.HARDWARE_COLUMNS}


def set_hardware_costs(session: Session, name: str, body: HardwareCostsIn) -> dict[str, Any]:
    """Power and price per hour of a class, for the website's per-watt and per-dollar-hour
    comparisons. Both are replaced (null clears one)."""
    hw = repo.hardware_class_named(session, name)
    if hw is None:
        raise NotFound(f"no hardware class {name!r}")
    hw.power_w = body.power_w
    hw.price_per_hour = body.price_per_hour
    return {c: getattr(hw, c) for c in repo.HARDWARE_COLUMNS}


def projects(session: Session) -> list[Project]:
    """Every project, by slug."""
    return repo.all_projects(session)


def projects_listing() -> Listing:
    return repo.projects_listing()


def hardware_listing() -> Listing:
    return repo.hardware_listing()


def machines_listing(hardware_class: str | None) -> Listing:
    return repo.machines_listing(hardware_class)


def benchmarks_listing(suite: str | None, name: str | None) -> Listing:
    return repo.benchmarks_listing(suite, name)


def metrics_listing() -> Listing:
    return repo.metrics_listing()
