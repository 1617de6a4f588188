"""schemathesis against the API's own OpenAPI document: every operation, with no token and with a
valid token of each scope. No case may be a 5xx, and every response must have a status and a
body the document declares. Bounded: EXAMPLES cases per operation, each sent once per token."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.generation import GenerationMode

from bench_server.app import create_app
from bench_server.auth.service import create_token
from bench_server.kit.db import Database
from bench_server.kit.settings import Settings
from bench_server.models import Project
from tests.bench_server.jobs.helpers import register_runner
from tests.conftest import _pg_admin, pg_url

EXAMPLES = 15
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


class Target:
    def __init__(self, url: str) -> None:
        self.db = Database.from_url(url)
        settings_ = Settings(
            database_url=url,
            environment="test",
            claim_max_wait_s=0,  # a generated ?wait= must not hold the run
            rate_limit_writes_per_s=0,
            github_webhook_secret="schemathesis-secret",
        )
        self.app = create_app(settings_, db=self.db)
        with self.db.transaction() as session:
            tokens = {
                s: create_token(session, f"st-{s}", [s]).token for s in ("admin", "ci", "runner", "register")
            }
            session.add(Project(slug="exo", name="exo", default_branch="main"))
        self.headers: dict[str, dict[str, str]] = {"none": {}}
        self.headers |= {s: {"Authorization": f"Bearer {t}"} for s, t in tokens.items()}


@pytest.fixture(scope="module")
def target(pg_template: str) -> Iterator[Target]:
    """PostgreSQL: the stricter of the two about what text and numbers it takes."""
    name = f"bench_st_{uuid.uuid4().hex[:12]}"
    _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    t = Target(pg_url(name))
    try:
        with TestClient(t.app) as client:
            t.headers["registered-runner"] = register_runner(client, t.db, "st-runner")["headers"]
            yield t
    finally:
        t.db.engine.dispose()
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def operations(target: Target) -> list[Any]:
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", target.app)
    return [result.ok() for result in schema.get_all_operations()]


def run_operation(operation: Any, mode: GenerationMode, target: Target) -> tuple[int, list[str]]:
    """Send EXAMPLES generated cases of one operation, each with every token; returns the number
    of requests and the failures found."""
    sent = 0
    failures: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def exercise(case: Any) -> None:
        nonlocal sent
        for headers in target.headers.values():
            try:
                case.call_and_validate(headers={**(case.headers or {}), **headers}, checks=CHECKS)
            except (Failure, FailureGroup) as exc:
                failures.append(
                    f"{operation.label} [{mode.value}] {headers and 'token' or 'no token'}: {exc}"[:3000]
                )
            sent += 1

    try:
        exercise()
    except Unsatisfiable:  # nothing to make invalid (an operation without parameters or body)
        assert mode is GenerationMode.NEGATIVE, operation.label
    return sent, failures


def test_no_5xx_and_every_response_as_documented(target: Target) -> None:
    ops = operations(target)
    assert len(ops) >= 30, [op.label for op in ops]
    sent = 0
    failures: list[str] = []
    for op in ops:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            n, found = run_operation(op, mode, target)
            sent += n
            failures += found[:1]  # one per operation and mode is enough to read
    print(f"\nschemathesis: {len(ops)} operations, {sent} requests")
    assert not failures, "\n\n".join(failures)
