"""docs/deploy.md against the code: its `bench-server` and `bench-runner` commands are accepted by
the real parsers, its `celery` commands are the compose file's, the compose services, API paths,
settings, repository files and workflow variables it names exist, its unit and plist files parse,
and the commands it gives for filling in .env, dumping, restoring and reading the schema's
revision do what it says, here on this machine's PostgreSQL."""

from __future__ import annotations

import configparser
import os
import plistlib
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import bench_runner.cli
import psycopg
import pytest
from alembic.script import ScriptDirectory
from bench_runner.config import ENV_CONFIG

import bench_server.cli
from bench_server.app import create_app
from bench_server.auth.service import create_token
from bench_server.kit.db import Database
from bench_server.kit.settings import Settings
from tests.conftest import pg_url
from tests.deploy.compose import FILLED, REPO, argv, example_env, missing_required, read_env_file, resolve
from tests.deploy.processes import VENV_BIN

GUIDE = REPO / "docs" / "deploy.md"
PROGRAMS = {"bench-server": bench_server.cli, "bench-runner": bench_runner.cli}
SHELL_OPERATORS = {">", "<", "|", "&&", "||", ";", ")"}
COMPOSE_SUBCOMMANDS = {"up", "exec", "run", "logs", "stop", "ps", "build"}
# What `docker compose exec/run <service>` runs, after the service name.
IN_CONTAINER = {"bench-server", "pg_dump", "pg_restore", "pg_basebackup", "psql"}


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", GUIDE.read_text(), re.S)


def shell_lines() -> list[str]:
    return [
        line.strip()
        for block in blocks("sh")
        for line in block.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def words_of(line: str) -> list[str]:
    # `$(...)` substitutions become one placeholder word each
    return shlex.split(re.sub(r"\$\([^)]*\)", "SUBST", line))


def command_at(words: list[str], start: int) -> list[str]:
    end = next((i for i in range(start, len(words)) if words[i] in SHELL_OPERATORS), len(words))
    return words[start:end]


def program_index(words: list[str], program: str) -> int | None:
    return next((i for i, w in enumerate(words) if w == program or w.endswith(f"/bin/{program}")), None)


def test_every_bench_command_is_accepted_by_its_parser() -> None:
    seen = set()
    for line in shell_lines():
        words = words_of(line)
        for program, module in PROGRAMS.items():
            i = program_index(words, program)
            if i is not None:
                command = command_at(words, i + 1)
                module.build_parser().parse_args(command)  # exits (fails the test) on a bad one
                seen.add((program, command[0]))
    assert {
        ("bench-server", "token"),
        ("bench-server", "project"),
        ("bench-server", "trigger"),
        ("bench-server", "migrate"),
        ("bench-runner", "register"),
        ("bench-runner", "detect"),
    } <= seen
    for block in blocks("ini"):
        unit = configparser.ConfigParser(interpolation=None)
        unit.optionxform = str  # type: ignore[assignment,method-assign]
        unit.read_string(block)
        words = shlex.split(unit["Service"]["ExecStart"])
        assert words[0].endswith("/bench-runner")
        bench_runner.cli.build_parser().parse_args(words[1:])
        assert unit["Service"]["Environment"].split("=")[0] == ENV_CONFIG
        assert unit["Service"]["KillMode"] == "mixed"
        grace = float(words[words.index("--grace") + 1])
        assert float(unit["Service"]["TimeoutStopSec"]) > grace
    (plist,) = blocks("xml")
    agent = plistlib.loads(plist.encode())
    bench_runner.cli.build_parser().parse_args(agent["ProgramArguments"][1:])
    grace = float(agent["ProgramArguments"][agent["ProgramArguments"].index("--grace") + 1])
    assert agent["ExitTimeOut"] > grace


def test_celery_commands_are_the_compose_files() -> None:
    services = resolve(example_env(**FILLED))["services"]
    expected = {
        argv(services[name]["command"])[3]: argv(services[name]["command"]) for name in ("worker", "beat")
    }
    found = set()
    for line in shell_lines():
        words = words_of(line)
        i = program_index(words, "celery")
        if i is not None:
            command = command_at(words, i)
            assert command == expected[command[3]], line
            found.add(command[3])
    assert found == {"worker", "beat"}


def test_compose_commands_name_services_of_the_file() -> None:
    services = set(resolve(example_env(**FILLED))["services"])
    for line in shell_lines():
        words = words_of(line)
        if words[:2] != ["docker", "compose"]:
            continue
        assert words[2] in COMPOSE_SUBCOMMANDS, line
        rest = command_at(words, 3)
        named = []
        for i, word in enumerate(rest):
            if word in IN_CONTAINER:
                break
            if rest[i - 1] == "--scale":
                named.append(word.split("=")[0])
            elif not word.startswith("-") and word != "--scale":
                named.append(word)
        assert set(named) <= services, line
        if words[2] in ("exec", "run"):
            assert named and len(named) == 1, line


def test_api_paths_it_calls_exist(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'bench.db'}"))
    paths = app.openapi()["paths"]
    app.state.db.engine.dispose()
    patterns = [(re.sub(r"\{[^}]+\}", "[^/]+", p), methods) for p, methods in paths.items()]
    called = 0
    for line in shell_lines():
        words = words_of(line)
        if words[0] != "curl":
            continue
        url = next(w for w in words if w.startswith("http"))
        path = "/" + url.split("/", 3)[3]
        method = words[words.index("-X") + 1].lower() if "-X" in words else "get"
        assert any(re.fullmatch(p, path) and method in m for p, m in patterns), line
        called += 1
    assert called >= 2


def test_settings_and_files_it_names_exist() -> None:
    text = GUIDE.read_text()
    runner_env = {ENV_CONFIG} | {
        name
        for path in (REPO / "runners" / "bench_runner").rglob("*.py")
        for name in re.findall(r"environ(?:\.get\(|\[)\s*\"(BENCH_[A-Z_]+)\"", path.read_text())
    }
    workflow_names = {
        name
        for p in (REPO / "ci" / "workflows").glob("*.yml")
        for name in re.findall(r"BENCH_[A-Z_]+", p.read_text())
    }
    known = {f"BENCH_{f.upper()}" for f in Settings.model_fields} | runner_env | workflow_names
    named = set(re.findall(r"\bBENCH_[A-Z_]+\b", text))
    assert named and named <= known, named - known

    for path in re.findall(r"`([A-Za-z_.][\w./-]*)`", text):
        first = path.split("/")[0]
        if "/" in path and (REPO / first).exists() and not path.startswith(".github"):
            assert (REPO / path.rstrip("/")).exists(), path


def test_the_workflow_settings_it_lists_are_the_ones_the_workflows_read() -> None:
    text = GUIDE.read_text()
    for workflow in ("bench-dispatch.yml", "bench-matrix.yml"):
        used = set(
            re.findall(
                r"(?:vars|secrets)\.(BENCH_[A-Z_]+)", (REPO / "ci" / "workflows" / workflow).read_text()
            )
        )
        section = text[text.index(f"`ci/workflows/{workflow}`") :].split("\n- ", 1)[0]
        listed = set(re.findall(r"`(BENCH_[A-Z_]+)`", section))
        assert used - {"BENCH_CI_PACKAGE"} <= listed <= used, workflow
    gh_set = {words_of(line)[3] for line in shell_lines() if line.startswith("gh ")}
    dispatch = (REPO / "ci" / "workflows" / "bench-dispatch.yml").read_text()
    assert gh_set == set(re.findall(r"(?:vars|secrets)\.(BENCH_[A-Z_]+)", dispatch)) - {"BENCH_CI_PACKAGE"}


def test_the_proxy_snippets_fit_the_servers_limits() -> None:
    settings = Settings()
    (nginx,) = blocks("nginx")
    size = re.search(r"client_max_body_size (\d+)m;", nginx)
    assert size and int(size[1]) * 1024 * 1024 >= settings.max_body_bytes
    timeout = re.search(r"proxy_read_timeout (\d+)s;", nginx)
    assert timeout and int(timeout[1]) > settings.claim_max_wait_s
    port = read_env_file(REPO / ".env.example")["API_PORT"]
    (caddy,) = blocks("caddyfile")
    assert f"reverse_proxy 127.0.0.1:{port}" in caddy and f"server 127.0.0.1:{port};" in nginx


def test_the_env_fill_in_command_gives_a_file_compose_accepts(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to check the guide's command (it is in Debian's base system)")
    (fill,) = [line for line in shell_lines() if line.startswith("sed -i")]
    shutil.copy(REPO / ".env.example", tmp_path / ".env")
    subprocess.run(["bash", "-c", fill], cwd=tmp_path, check=True, timeout=30)
    env = read_env_file(tmp_path / ".env")
    assert missing_required(env) == set()
    assert re.fullmatch(r"[0-9a-f]{48}", env["POSTGRES_PASSWORD"])
    assert re.fullmatch(r"[0-9a-f]{64}", env["BENCH_GITHUB_WEBHOOK_SECRET"])
    # the server's production checks accept what it wrote
    Settings(
        environment="production",
        database_url="postgresql+psycopg://bench@postgres/bench",
        github_webhook_secret=env["BENCH_GITHUB_WEBHOOK_SECRET"],
    )


def _in_postgres_container(line: str, program: str, database: str) -> list[str]:
    """A `docker compose exec -T postgres <program> ...` line as it runs here: TCP to this
    machine's server as its admin role, on a test database."""
    words = words_of(line)
    command = command_at(words, words.index(program))
    local: list[str] = []
    for i, word in enumerate(command):
        if command[i - 1] == "-U":
            local[-1:] = ["-h", "127.0.0.1", "-U", "postgres"]
        elif command[i - 1] == "-d":
            local.append(database)
        else:
            local.append(word)
    return local


@pytest.mark.postgres
def test_the_dump_restore_and_revision_commands_round_trip(
    pg_database: str, empty_database: str, tmp_path: Path
) -> None:
    for program in ("pg_dump", "pg_restore", "psql"):
        if shutil.which(program) is None:
            pytest.fail(f"{program} is missing: it comes with PostgreSQL's client (postgresql-client)")
    source = pg_database.rsplit("/", 1)[1]
    db = Database.from_url(pg_database)
    with db.transaction() as session:
        token = create_token(session, "kept", ["ci"])
    db.engine.dispose()
    lines = shell_lines()
    (dump,) = [line for line in lines if " pg_dump " in line]
    (restore,) = [line for line in lines if " pg_restore " in line]
    (revision,) = [line for line in lines if "alembic_version" in line]

    dumped = subprocess.run(_in_postgres_container(dump, "pg_dump", source), capture_output=True, timeout=120)
    assert dumped.returncode == 0, dumped.stderr
    restored = subprocess.run(
        _in_postgres_container(restore, "pg_restore", empty_database),
        input=dumped.stdout,
        capture_output=True,
    )
    assert restored.returncode == 0, restored.stderr
    env = {**os.environ, "BENCH_DATABASE_URL": pg_url(empty_database)}
    subprocess.run(
        [str(VENV_BIN / "bench-server"), "migrate"], env=env, check=True, capture_output=True, timeout=120
    )
    read = subprocess.run(
        _in_postgres_container(revision, "psql", empty_database), capture_output=True, text=True
    )
    assert read.stdout.strip() == ScriptDirectory(str(REPO / "migrations")).get_current_head()
    with psycopg.connect(pg_url(empty_database)) as conn:
        row = conn.execute("SELECT name FROM api_tokens WHERE id = %s", (token.id,)).fetchone()
    assert row == ("kept",)
