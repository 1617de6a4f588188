"""`/api/v1/projects`, `/hardware` (and a class's `/costs`), `/benchmarks`, `/metrics`, `/machines`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from bench_server.auth.deps import AdminAuth
from bench_server.catalog import service
from bench_server.catalog.schemas import HardwareClassIn, HardwareCostsIn, ProjectIn
from bench_server.kit.deps import DbSession, ReadSession
from bench_server.kit.openapi import error_responses
from bench_server.kit.paging import Page, listing_response

router = APIRouter(tags=["catalog"])


@router.get("/projects")
def list_projects(request: Request, session: ReadSession, page: Page) -> Any:
    return listing_response(request, session, page, service.projects_listing())


@router.post("/projects", status_code=201, responses=error_responses(409))
def create_project(body: ProjectIn, session: DbSession, _: AdminAuth) -> dict[str, Any]:
    return service.create_project(session, body)


@router.get("/hardware")
def list_hardware(request: Request, session: ReadSession, page: Page) -> Any:
    return listing_response(request, session, page, service.hardware_listing())


@router.post("/hardware", status_code=201, responses=error_responses(409))
def create_hardware(body: HardwareClassIn, session: DbSession, _: AdminAuth) -> dict[str, Any]:
    return service.create_hardware_class(session, body)


@router.put("/hardware/{name}/costs", responses=error_responses(404))
def set_hardware_costs(name: str, body: HardwareCostsIn, session: DbSession, _: AdminAuth) -> dict[str, Any]:
    """Power (W) and price per hour ($) of one machine or cluster of the class (admin)."""
    return service.set_hardware_costs(session, name, body)


@router.get("/machines")
def list_machines(
    request: Request, session: ReadSession, page: Page, hardware_class: str | None = None
) -> Any:
    return listing_response(request, session, page, service.machines_listing(hardware_class))


@router.get("/benchmarks")
def list_benchmarks(
    request: Request, session: ReadSession, page: Page, suite: str | None = None, name: str | None = None
) -> Any:
    return listing_response(request, session, page, service.benchmarks_listing(suite, name))


@router.get("/metrics")
def list_metrics(request: Request, session: ReadSession, page: Page) -> Any:
    return listing_response(request, session, page, service.metrics_listing())
