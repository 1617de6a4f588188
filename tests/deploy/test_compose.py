"""docker-compose.yml without a Docker engine: valid against the Compose Specification's JSON
schema, the production shape the deployment guide describes (one-shot migrate first, healthchecks,
depends_on conditions, named volumes), settings that the server knows, defaults equal to its own,
required secrets that stop Compose when missing, and the same result as Compose's own parser."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bench_server.kit.settings import Settings
from bench_server.tasks import QUEUES
from tests.conftest import SHARED_DATA
from tests.deploy.compose import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    FILLED,
    REPO,
    MissingVariable,
    argv,
    example_env,
    interpolate,
    missing_required,
    raw_compose,
    read_env_file,
    references,
    resolve,
)

SCHEMA = SHARED_DATA / "compose_spec" / "compose-spec.json"
ONE_SHOT = {"migrate"}
SERVER_SERVICES = {"migrate", "api", "worker", "beat"}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    return resolve(example_env(**FILLED))


def services(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(doc["services"])


def test_the_file_and_its_resolved_form_follow_the_compose_schema(
    validator: jsonschema.Draft7Validator, resolved: dict[str, Any]
) -> None:
    for doc in (raw_compose(), resolved):
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
        assert errors == []


@pytest.mark.parametrize(
    "path, value",
    [
        (("services", "api", "depends_on", "migrate", "condition"), "service_completed"),
        (("services", "worker", "healthcheck", "test"), 5),
        (("services", "api", "ports"), "8000:8000"),
        (("services", "beat", "restrat"), "always"),
        (("volumes", "pgdata"), "not-a-mapping"),
    ],
)
def test_the_schema_refuses_a_broken_file(
    validator: jsonschema.Draft7Validator, path: tuple[str, ...], value: Any
) -> None:
    """The validator is not vacuous: one wrong key or value in our file fails it."""
    doc = copy.deepcopy(raw_compose())
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert not validator.is_valid(doc)


def test_every_long_running_service_has_a_healthcheck_and_the_one_shot_does_not_restart(
    resolved: dict[str, Any],
) -> None:
    for name, service in services(resolved).items():
        if name in ONE_SHOT:
            assert service["restart"] == "no" and "healthcheck" not in service
        else:
            check = service.get("healthcheck", {})
            assert check.get("test") and check["test"][0] in ("CMD", "CMD-SHELL"), name
            assert service.get("restart") == "unless-stopped", name


def test_start_order_migrate_first_then_the_server_then_the_runner(resolved: dict[str, Any]) -> None:
    svc = services(resolved)
    conditions = {
        name: {dep: spec["condition"] for dep, spec in service.get("depends_on", {}).items()}
        for name, service in svc.items()
    }
    for name, deps in conditions.items():
        for dep, condition in deps.items():
            # each condition is one that the dependency can meet
            if condition == "service_healthy":
                assert "healthcheck" in svc[dep], (name, dep)
            else:
                assert condition == "service_completed_successfully" and dep in ONE_SHOT, (name, dep)
    assert conditions["migrate"] == {"postgres": "service_healthy"}
    for name in ("api", "worker", "beat"):
        assert conditions[name]["migrate"] == "service_completed_successfully"
        assert conditions[name]["redis"] == "service_healthy"
    assert conditions["runner-cpu"] == {"api": "service_healthy"}


def test_the_commands_are_the_server_entry_points(resolved: dict[str, Any]) -> None:
    svc = services(resolved)
    assert argv(svc["migrate"]["command"]) == ["bench-server", "migrate"]
    assert argv(svc["api"]["command"])[:3] == ["uvicorn", "bench_server.app:create_app", "--factory"]
    worker = argv(svc["worker"]["command"])
    assert worker[:4] == ["celery", "-A", "bench_server.worker", "worker"]
    # the worker consumes every declared queue: a task on one it skipped would wait forever
    assert worker[worker.index("-Q") + 1].split(",") == list(QUEUES)
    assert argv(svc["beat"]["command"])[:4] == ["celery", "-A", "bench_server.worker", "beat"]
    assert "--enable-remote-control" in argv(svc["beat"]["command"])  # what its healthcheck pings
    assert svc["api"]["ports"] == ["127.0.0.1:8000:8000"]


def test_named_volumes_are_declared_used_and_hold_the_state(resolved: dict[str, Any]) -> None:
    mounts = {
        (name, mount.split(":")[0], mount.split(":")[1])
        for name, service in services(resolved).items()
        for mount in service.get("volumes", [])
    }
    assert {source for _, source, _ in mounts} == set(resolved["volumes"])  # all named, none unused
    assert ("postgres", "pgdata", "/var/lib/postgresql/data") in mounts
    assert ("redis", "redisdata", "/data") in mounts
    assert ("runner-cpu", "runner-state", "/var/lib/bench-runner") in mounts


def test_the_database_and_the_broker_are_on_an_internal_network_only(resolved: dict[str, Any]) -> None:
    svc = services(resolved)
    assert resolved["networks"]["backend"]["internal"] is True
    for name in ("postgres", "redis"):
        assert svc[name]["networks"] == ["backend"] and "ports" not in svc[name]
    # the runner reaches the API only: over HTTP, on the default network
    assert "networks" not in svc["runner-cpu"]
    assert "default" in svc["api"]["networks"]


def test_every_bench_setting_is_one_the_server_reads_with_its_default(resolved: dict[str, Any]) -> None:
    fields = Settings.model_fields
    for name in SERVER_SERVICES:
        env = services(resolved)[name]["environment"]
        unknown = [
            k for k in env if k.startswith("BENCH_") and k.removeprefix("BENCH_").lower() not in fields
        ]
        assert unknown == [], name
    defaults = [r for r in references() if r.name.startswith("BENCH_") and r.op == ":-"]
    assert defaults
    for ref in defaults:
        field = ref.name.removeprefix("BENCH_").lower()
        # the compose default, read as the server reads its environment, is the server's default
        assert Settings.model_validate({field: ref.arg}).model_dump()[field] == fields[field].default, ref


def test_the_resolved_server_environment_passes_the_production_checks(
    resolved: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith("BENCH_")]:
        monkeypatch.delenv(key)
    for key, value in services(resolved)["api"]["environment"].items():
        monkeypatch.setenv(key, str(value))
    settings = Settings()
    assert settings.environment == "production"
    assert settings.database_url == "postgresql+psycopg://bench:0123abcd@postgres:5432/bench"
    assert settings.broker_url == "redis://redis:6379/0"
    assert settings.github_webhook_secret.get_secret_value() == FILLED["BENCH_GITHUB_WEBHOOK_SECRET"]
    # every server service runs with the same settings (one lease length, one retry policy)
    envs = [services(resolved)[name]["environment"] for name in SERVER_SERVICES]
    assert all(env == envs[0] for env in envs)


def test_env_example_lists_every_variable_with_a_comment() -> None:
    example = read_env_file(ENV_EXAMPLE)
    assert set(example) == {r.name for r in references()}
    # each variable sits in a block of lines (no blank line between) that a comment opens
    commented = False
    for line in ENV_EXAMPLE.read_text().splitlines():
        if not line.strip():
            commented = False
        elif line.startswith("#"):
            commented = True
        else:
            assert commented, f".env.example: {line.split('=')[0]} has no comment"
    for ref in references():
        if ref.op == ":-":
            assert example[ref.name] == ref.arg, f"{ref.name}: .env.example and the compose default differ"


def test_required_secrets_stop_compose_with_a_message() -> None:
    required = {r.name for r in references() if r.op == ":?"}
    assert required == set(FILLED)
    # .env.example as shipped leaves exactly those empty, so a copy of it refuses to start
    assert missing_required(example_env()) == required
    for name in required:
        env = example_env(**{**FILLED, name: ""})
        with pytest.raises(MissingVariable) as caught:
            resolve(env)
        assert caught.value.name == name and "set" in caught.value.message


def test_interpolation_follows_the_compose_rules() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("$$SET ${SET} $SET", env) == "$SET x x"
    assert interpolate("${EMPTY:-d} ${EMPTY-d} ${UNSET-d} ${UNSET:-d}", env) == "d  d d"
    assert interpolate("${SET:+alt} ${EMPTY:+alt} ${EMPTY+alt}", env) == "alt  alt"
    with pytest.raises(MissingVariable):
        interpolate("${EMPTY:?needed}", env)
    assert interpolate("${EMPTY?needed}", env) == ""


def _unescape(node: Any) -> Any:
    """`config` writes a literal `$` back as `$$` (so that its output is a compose file again)."""
    if isinstance(node, dict):
        return {k: _unescape(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_unescape(v) for v in node]
    return node.replace("$$", "$") if isinstance(node, str) else node


def _write_env(path: Path, env: dict[str, str]) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return path


def _compose_config(cmd: list[str], env_file: Path) -> subprocess.CompletedProcess[str]:
    # a clean environment: Compose lets the shell's variables win over the env file
    clean = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [
            *cmd,
            "--project-directory",
            str(REPO),
            "-f",
            str(COMPOSE_FILE),
            "--env-file",
            str(env_file),
            "config",
        ],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_debian_docker_compose_resolves_it_as_we_do(resolved: dict[str, Any], tmp_path: Path) -> None:
    """Debian's docker-compose (1.29, Python) parses and interpolates offline, no daemon needed."""
    # scripts/services.sh installs it; a missing one is a set-up failure, not a reason to skip.
    assert shutil.which("docker-compose"), "Debian's docker-compose is missing: run scripts/services.sh"
    done = _compose_config(["docker-compose"], _write_env(tmp_path / "filled.env", example_env(**FILLED)))
    assert done.returncode == 0, done.stderr
    theirs = _unescape(yaml.safe_load(done.stdout))
    assert set(theirs["services"]) == set(resolved["services"])
    for name, ours in services(resolved).items():
        for key in ("command", "environment", "depends_on", "image", "restart"):
            assert _normalise(theirs["services"][name].get(key)) == _normalise(ours.get(key)), (name, key)
        if "healthcheck" in ours:
            assert theirs["services"][name]["healthcheck"]["test"] == ours["healthcheck"]["test"], name
    assert set(theirs["volumes"]) == set(resolved["volumes"])

    refused = _compose_config(["docker-compose"], _write_env(tmp_path / "example.env", example_env()))
    assert refused.returncode != 0 and "set POSTGRES_PASSWORD in .env" in refused.stderr


def _normalise(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return None if value is None else str(value)
