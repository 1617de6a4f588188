"""Property tests of the ingest validators: whatever a client sends, the schema either refuses
it with a validation error or hands the service a batch the database and the JSON encoder can
take; through the API nothing is a 5xx and a refused batch leaves every table as it was."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bench_server.kit.inputs import MAX_INT64, MIN_INT64, canonical_json_value
from bench_server.kit.sql import canonical_json
from bench_server.results.schemas import IngestIn
from tests.bench_server.conftest import Api, batch, make_api
from tests.bench_server.security.conftest import table_counts

BOUNDED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
THROUGH_HTTP = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Text with the characters that hurt: NUL, controls, surrogates-free unicode, SQL and LIKE metas.
nasty_text = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(["\x00", "\x1b", "\n", "%", "_", "'", '"', "\\", ";", "-", "🚀"]),
    ),
    max_size=30,
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
)
# The values that broke ingest before, drawn often enough to matter in a bounded run.
known_bad = st.sampled_from([math.nan, math.inf, -math.inf, 2**63, -(2**63) - 1, 2**64, "a\x00b", "\x00"])
json_values = st.recursive(
    st.one_of(known_bad, st.none(), st.booleans(), numbers, nasty_text),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(nasty_text, children, max_size=4)
    ),
    max_leaves=25,
)


def all_values(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from all_values(v)
    elif isinstance(value, list):
        for v in value:
            yield from all_values(v)


def assert_storable(value: Any) -> None:
    """What PostgreSQL's jsonb/text and orjson both take."""
    canonical_json(value)  # allow_nan=False: raises on NaN and infinities
    for v in all_values(value):
        if isinstance(v, str):
            assert "\x00" not in v
        elif isinstance(v, float):
            assert math.isfinite(v)
        elif isinstance(v, int) and not isinstance(v, bool):
            assert MIN_INT64 <= v <= MAX_INT64


@BOUNDED
@given(value=json_values)
def test_free_form_json_is_refused_or_storable(value: Any) -> None:
    try:
        canonical = canonical_json_value(value)
    except ValueError:
        return
    assert_storable(canonical)
    assert canonical_json_value(canonical) == canonical  # idempotent
    assert json.loads(canonical_json(canonical)) == canonical


json_objects = st.dictionaries(nasty_text, json_values, max_size=4)
# Each ingest field, with values of its own type (mostly) and of any type (sometimes).
OBJECT, TEXT, NUMBER = json_objects, st.one_of(nasty_text, known_bad), st.one_of(numbers, known_bad)
FIELDS: dict[tuple[Any, ...], st.SearchStrategy[Any]] = {
    ("idempotency_key",): TEXT,
    ("project",): TEXT,
    ("job_id",): NUMBER,
    ("context",): OBJECT,
    ("commit", "branch"): TEXT,
    ("commit", "message"): TEXT,
    ("commit", "author"): TEXT,
    ("machine", "hardware_class"): TEXT,
    ("machine", "fingerprint"): OBJECT,
    ("machine", "hostname"): TEXT,
    ("results", 0, "suite"): TEXT,
    ("results", 0, "benchmark"): TEXT,
    ("results", 0, "metric"): TEXT,
    ("results", 0, "unit"): TEXT,
    ("results", 0, "params"): OBJECT,
    ("results", 0, "value"): NUMBER,
    ("results", 0, "samples"): st.lists(NUMBER, max_size=5),
    ("results", 0, "stats"): st.dictionaries(nasty_text, NUMBER, max_size=3),
}
field_values = st.sampled_from(sorted(FIELDS, key=str)).flatmap(
    lambda path: st.tuples(st.just(path), st.one_of(FIELDS[path], FIELDS[path], json_values))
)


def with_field(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    body = json.loads(json.dumps(body))
    target: Any = body
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return body


@BOUNDED
@given(field=field_values)
def test_any_value_in_any_ingest_field_is_refused_or_storable(field: tuple[tuple[Any, ...], Any]) -> None:
    path, value = field
    try:
        parsed = IngestIn.model_validate(with_field(batch(), path, value))
    except ValidationError as exc:
        assert exc.errors(), "a refusal names what it refuses"
        return
    assert_storable(parsed.model_dump(mode="json"))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def module_api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One database for all the examples of a test (a fresh one per example would dominate)."""
    from tests.conftest import _pg_admin, pg_url

    if request.param == "sqlite":
        from bench_server.kit.migrate import upgrade

        url = f"sqlite:///{tmp_path_factory.mktemp('props') / 'bench.db'}"
        upgrade(url)
        drop = None
    else:
        template = request.getfixturevalue("pg_template")
        name = f"bench_p_{uuid.uuid4().hex[:12]}"
        _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        url, drop = pg_url(name), name
    api = make_api(url, rate_limit_writes_per_s=0)
    api.client = TestClient(api.client.app, raise_server_exceptions=False)
    try:
        with api.client:
            yield api
    finally:
        api.db.engine.dispose()
        if drop:
            _pg_admin(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)')


def post(api: Api, raw: bytes) -> Any:
    return api.client.post(
        "/api/v1/results", content=raw, headers={**api.runner, "content-type": "application/json"}
    )


@THROUGH_HTTP
@given(field=field_values, key=st.uuids())
def test_through_the_api_no_value_is_a_5xx_and_refusals_store_nothing(
    module_api: Api, field: tuple[tuple[Any, ...], Any], key: Any
) -> None:
    path, value = field
    body = with_field(batch(key=str(key)), path, value) if path != ("idempotency_key",) else batch(key=value)
    before = table_counts(module_api.db)
    resp = post(module_api, json.dumps(body).encode())
    assert resp.status_code < 500, resp.text
    if resp.status_code >= 400:
        assert set(resp.json()) == {"error", "detail"}
        assert table_counts(module_api.db) == before


@THROUGH_HTTP
@given(raw=st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode())))
def test_arbitrary_bytes_are_a_4xx_and_store_nothing(module_api: Api, raw: bytes) -> None:
    before = table_counts(module_api.db)
    resp = post(module_api, raw)
    assert 400 <= resp.status_code < 500, resp.text
    assert set(resp.json()) == {"error", "detail"}
    assert table_counts(module_api.db) == before


@THROUGH_HTTP
@given(content=st.one_of(nasty_text, st.binary(max_size=400).map(lambda b: b.decode("latin-1"))))
def test_an_imported_file_of_anything_is_refused_whole_or_stored_whole(module_api: Api, content: str) -> None:
    before = table_counts(module_api.db)
    resp = module_api.client.post(
        "/api/v1/imports",
        params={"project": "exo", "sha": "a" * 40, "hardware_class": "cpu-x86_64"},
        content=content.encode("utf-8", errors="surrogatepass"),
        headers={**module_api.runner, "content-type": "text/plain"},
    )
    assert resp.status_code < 500, resp.text
    if resp.status_code >= 400:
        assert table_counts(module_api.db) == before
