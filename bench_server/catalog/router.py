"""`/api/v1/projects`, `/hardware`, `/benchmarks`, `/metrics`, `/machines`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select

from bench_server.auth.deps import AdminAuth
from bench_server.catalog.schemas import HardwareClassIn, ProjectIn
from bench_server.kit.deps import AppDatabase, DbSession
from bench_server.kit.errors import Conflict
from bench_server.kit.paging import Page, listing_response
from bench_server.models import Benchmark, HardwareClass, Machine, Metric, Project

router = APIRouter(tags=["catalog"])

PROJECT_COLS = ["id", "slug", "name", "clone_url", "default_branch", "github_repo", "created_at"]
HW_COLS = ["id", "name", "kind", "description", "accelerators", "members"]
BENCH_COLS = ["id", "suite", "name", "params", "params_hash"]
METRIC_COLS = ["id", "name", "unit", "direction"]
MACHINE_COLS = ["id", "hardware_class", "fingerprint_hash", "hostname", "fingerprint", "last_seen_at"]


@router.get("/projects")
def list_projects(
    request: Request,
    db: AppDatabase,
    page: Page,
) -> Any:
    query = select(*(getattr(Project, c) for c in PROJECT_COLS))
    return listing_response(
        request,
        db,
        query,
        Project.id,
        PROJECT_COLS,
        page,
        name="projects",
    )


@router.post("/projects", status_code=201)
def create_project(body: ProjectIn, session: DbSession, _: AdminAuth) -> dict[str, Any]:
    if session.scalars(select(Project).where(Project.slug == body.slug)).first():
        raise Conflict(f"project {body.slug!r} exists")
    project = Project(**body.model_dump(exclude={"name"}), name=body.name or body.slug)
    session.add(project)
    session.flush()
    return {c: getattr(project, c) for c in PROJECT_COLS}


@router.get("/hardware")
def list_hardware(
    request: Request,
    db: AppDatabase,
    page: Page,
) -> Any:
    query = select(*(getattr(HardwareClass, c) for c in HW_COLS))
    return listing_response(
        request,
        db,
        query,
        HardwareClass.id,
        HW_COLS,
        page,
        name="hardware",
    )


@router.post("/hardware", status_code=201)
def create_hardware(body: HardwareClassIn, session: DbSession, _: AdminAuth) -> dict[str, Any]:
    if session.scalars(select(HardwareClass).where(HardwareClass.name == body.name)).first():
        raise Conflict(f"hardware class {body.name!r} exists")
    hw = HardwareClass(**body.model_dump(), kind="machine", members=[])
    session.add(hw)
    session.flush()
    return {c: getattr(hw, c) for c in HW_COLS}


@router.get("/machines")
def list_machines(
    request: Request,
    db: AppDatabase,
    page: Page,
    hardware_class: str | None = None,
) -> Any:
    query = select(
        Machine.id,
        HardwareClass.name,
        Machine.fingerprint_hash,
        Machine.hostname,
        Machine.fingerprint,
        Machine.last_seen_at,
    ).join(HardwareClass, HardwareClass.id == Machine.hardware_class_id)
    if hardware_class:
        query = query.where(HardwareClass.name == hardware_class)
    return listing_response(
        request,
        db,
        query,
        Machine.id,
        MACHINE_COLS,
        page,
        name="machines",
    )


@router.get("/benchmarks")
def list_benchmarks(
    request: Request,
    db: AppDatabase,
    page: Page,
    suite: str | None = None,
    name: str | None = None,
) -> Any:
    query = select(*(getattr(Benchmark, c) for c in BENCH_COLS))
    if suite:
        query = query.where(Benchmark.suite == suite)
    if name:
        query = query.where(Benchmark.name == name)
    return listing_response(
        request,
        db,
        query,
        Benchmark.id,
        BENCH_COLS,
        page,
        name="benchmarks",
    )


@router.get("/metrics")
def list_metrics(
    request: Request,
    db: AppDatabase,
    page: Page,
) -> Any:
    query = select(*(getattr(Metric, c) for c in METRIC_COLS))
    return listing_response(
        request,
        db,
        query,
        Metric.id,
        METRIC_COLS,
        page,
        name="metrics",
    )
