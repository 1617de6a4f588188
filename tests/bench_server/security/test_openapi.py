"""The OpenAPI document describes the API as it answers: errors in the `{"error", "detail"}`
shape, and the statuses each operation can give."""

from __future__ import annotations

from typing import Any

import pytest

from bench_server.kit.openapi import ErrorOut
from tests.bench_server.conftest import Api, batch

ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}


@pytest.fixture
def doc(api: Api) -> dict[str, Any]:
    resp = api.client.get("/api/v1/openapi.json")
    assert resp.status_code == 200
    return dict(resp.json())


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, item in doc["paths"].items() for m, op in item.items()]


def test_every_error_is_declared_as_error_out(doc: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for method, path, op in operations(doc):
        for code, response in op["responses"].items():
            if code.startswith("4"):
                assert response["content"]["application/json"]["schema"] == ERROR_REF, (method, path, code)


def test_statuses_are_documented_where_they_happen(doc: dict[str, Any]) -> None:
    for method, path, op in operations(doc):
        codes = set(op["responses"])
        where = (method, path)
        if op.get("parameters") or op.get("requestBody"):
            assert "422" in codes, where
        if op.get("requestBody"):
            assert {"400", "413"} <= codes, where
        if op.get("security"):
            assert {"401", "403"} <= codes, where
        if method != "get" and path.startswith("/api/v1/"):
            assert "429" in codes and "Retry-After" in op["responses"]["429"]["headers"], where
    paths = doc["paths"]
    assert {"403", "409"} <= set(paths["/api/v1/results"]["post"]["responses"])
    for action in ("lease", "start", "finish", "release", "cancel"):
        assert {"404", "409"} <= set(paths[f"/api/v1/jobs/{{job_id}}/{action}"]["post"]["responses"])
    assert "404" in paths["/api/v1/jobs/{job_id}"]["get"]["responses"]
    assert "404" in paths["/api/v1/runs/{run_id}"]["get"]["responses"]
    assert {"409"} <= set(paths["/api/v1/projects"]["post"]["responses"])
    assert {"400", "401", "413", "422", "429"} <= set(paths["/api/v1/github/webhook"]["post"]["responses"])


def test_writes_declare_the_bearer_scheme(doc: dict[str, Any]) -> None:
    schemes = doc["components"]["securitySchemes"]
    assert [s["scheme"] for s in schemes.values()] == ["bearer"]
    assert doc["paths"]["/api/v1/results"]["post"]["security"]
    assert "security" not in doc["paths"]["/api/v1/results"]["get"]


def test_a_real_422_and_401_match_the_declared_body(api: Api) -> None:
    invalid = api.ingest(batch(key=""))
    unauthorized = api.client.post("/api/v1/results", json=batch())
    limited = api.client.get("/api/v1/results?limit=0")
    for resp, status in ((invalid, 422), (unauthorized, 401), (limited, 422)):
        assert resp.status_code == status
        ErrorOut.model_validate(resp.json())


def test_format_and_times_are_described_as_the_api_reads_them(doc: dict[str, Any]) -> None:
    params = {p["name"]: p for p in doc["paths"]["/api/v1/results"]["get"]["parameters"]}
    fmt = params["format"]["schema"]
    enum = [v for option in fmt.get("anyOf", [fmt]) for v in option.get("enum", [])]
    assert set(enum) == {"csv", "json", ""}  # empty is the default page, and the schema says so
    since = params["since"]["schema"]
    formats = [option.get("format") for option in since.get("anyOf", [since])]
    assert "date-time" in formats
    assert "ISO 8601" in params["since"]["description"]
    assert params["commit"]["schema"]["anyOf"][0]["pattern"] == "^[0-9a-fA-F]{1,64}$"
