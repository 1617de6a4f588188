"""Every command docker-compose.yml runs, run as a plain process against this machine's
PostgreSQL and Redis: the same entry points, the same settings variables, each service's
environment as its container gets it (image ENV, then the service's `environment`, resolved from
.env.example with the required values filled in). What differs from a container is only where
things are: the host names `postgres`, `redis` and `api` become 127.0.0.1, the database is a
fresh empty one, the broker is the tests' Redis database, the API listens on a free port, and the
images' paths (/opt/venv, /var/lib/bench-runner, ...) are this virtualenv and temporary folders.
Healthchecks run the same way, so each is seen passing while its service runs and, for the API
and the runner, failing once they are gone."""

from __future__ import annotations

import json
import re
import signal
import stat
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
import redis
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from tests.bench_server.jobs.helpers import free_port, wait_for
from tests.conftest import REDIS_URL, pg_url
from tests.deploy.compose import FILLED, REPO, argv, example_env, resolve
from tests.deploy.conftest import empty_pg_database
from tests.deploy.dockerfile import parse
from tests.deploy.processes import VENV, Localizer, Processes, container_env, processes, run

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(300)]

SERVER_IMAGE_ENV = parse(REPO / "Dockerfile")[-1].env()
RUNNER_IMAGE_ENV = parse(REPO / "runners" / "Dockerfile")[-1].env()
# A suite no runner has: the job reaches the runner and comes back as a `setup` failure at once,
# without checking out or benchmarking anything.
ABSENT_SUITE = "deploy-check"


def _sha() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def empty_database() -> Iterator[str]:
    """Nothing in it: the compose file's migrate service has all the work to do."""
    with empty_pg_database("bench_deploy") as name:
        url = make_url(pg_url(name)).set(drivername="postgresql+psycopg")
        yield url.render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    try:
        yield REDIS_URL
    finally:
        client.flushdb()
        client.close()


@dataclass
class Stack:
    procs: Processes
    services: dict[str, dict[str, Any]]
    envs: dict[str, dict[str, str]]
    localize: Localizer
    api_url: str
    database: str
    runner_state: Path
    workdir: Path
    migrations: list[subprocess.CompletedProcess[str]]

    def healthcheck(self, name: str) -> subprocess.CompletedProcess[str]:
        test = argv(self.services[name]["healthcheck"]["test"])
        args = test[1:] if test[0] == "CMD" else ["sh", "-c", test[1]]
        return run(self.localize.argv(args), self.envs[name], self.workdir, timeout=60)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`docker compose exec -T api <args>`: a command in the API's environment."""
        return run(list(args), self.envs["api"], self.workdir)

    def trigger(self, sha: str) -> dict[str, Any]:
        done = self.cli(
            "bench-server", "trigger", "exo", sha, "--ref", "refs/heads/main", "--suite", ABSENT_SUITE
        )
        assert done.returncode == 0, done.stderr
        assert "the fan-out is queued for a worker" in done.stderr  # not run in the CLI's process
        return dict(json.loads(done.stdout))


def _server_env(service: dict[str, Any], localize: Localizer, database: str, broker: str) -> dict[str, str]:
    env = {k: str(v) for k, v in service["environment"].items()}
    db = make_url(env["BENCH_DATABASE_URL"])
    assert (db.drivername, db.host, db.port, db.database) == ("postgresql+psycopg", "postgres", 5432, "bench")
    assert db.password == FILLED["POSTGRES_PASSWORD"]
    queue = urlsplit(env["BENCH_BROKER_URL"])
    assert (queue.scheme, queue.hostname, queue.port) == ("redis", "redis", 6379)
    env["BENCH_DATABASE_URL"], env["BENCH_BROKER_URL"] = database, broker
    return container_env(SERVER_IMAGE_ENV, env, localize)


def _api_argv(args: list[str], port: int) -> list[str]:
    """The API's command with its listening address moved to 127.0.0.1 and a free port."""
    args = list(args)
    args[args.index("--host") + 1] = "127.0.0.1"
    args[args.index("--port") + 1] = str(port)
    return args


def _localizer(tmp: Path, api_url: str) -> Localizer:
    """The images' paths and the API's addresses, as they are here."""
    return Localizer(
        paths={
            "/opt/venv": str(VENV),
            "/var/lib/bench-runner": str(tmp / "runner-state"),  # the runner-state volume
            "/opt/bench-runner/suites": str(REPO / "runners" / "suites"),
            "/tmp/celerybeat-schedule": str(tmp / "celerybeat-schedule"),
        },
        strings={"http://api:8000": api_url, "http://127.0.0.1:8000": api_url},
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, empty_database: str, broker: str) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("stack")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}"
    localize = _localizer(tmp, api_url)
    (tmp / "runner-state").mkdir()
    env = example_env(**{**FILLED, "BENCH_PUBLIC_URL": api_url})
    services = dict(resolve(env)["services"])
    envs = {
        name: _server_env(services[name], localize, empty_database, broker)
        for name in ("migrate", "api", "worker", "beat")
    }

    # `docker compose up` runs the one-shot migrate (on every up: the second run has nothing to do)
    migrate = localize.argv(argv(services["migrate"]["command"]))
    migrations = [run(migrate, envs["migrate"], tmp) for _ in range(2)]
    assert migrations[0].returncode == 0, migrations[0].stderr

    with processes(tmp) as procs:
        stack = Stack(
            procs, services, envs, localize, api_url, empty_database, tmp / "runner-state", tmp, migrations
        )
        # the bootstrap the deployment guide gives: a project and a registration token
        created = stack.cli(
            "bench-server", "project", "create", "exo", "--clone-url", "https://github.com/exo-explore/exo",
            "--github-repo", "exo-explore/exo",
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        token = stack.cli("bench-server", "token", "create", "--name", "runner-cpu", "--scope", "register")
        assert token.returncode == 0, token.stderr

        procs.start("api", _api_argv(localize.argv(argv(services["api"]["command"])), port), envs["api"])
        wait_for(lambda: _health(api_url) or not procs.alive("api"), 60, "the API")
        assert procs.alive("api"), procs.log("api")
        for name in ("worker", "beat"):
            procs.start(name, localize.argv(argv(services[name]["command"])), envs[name])

        runner = resolve({**env, "RUNNER_REGISTRATION_TOKEN": token.stdout.strip()})["services"]["runner-cpu"]
        services["runner-cpu"] = runner
        envs["runner-cpu"] = container_env(RUNNER_IMAGE_ENV, runner["environment"], localize)
        procs.start("runner-cpu", localize.argv(argv(runner["command"])), envs["runner-cpu"])
        yield stack


def _health(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/v1/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_migrate_brings_an_empty_database_to_head_and_again_is_a_no_op(stack: Stack) -> None:
    assert [m.returncode for m in stack.migrations] == [0, 0], stack.migrations[-1].stderr
    with psycopg.connect(
        make_url(stack.database).set(drivername="postgresql").render_as_string(False)
    ) as conn:
        (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone() or (None,)
    assert version == ScriptDirectory(str(REPO / "migrations")).get_current_head()


def test_the_api_answers_health_and_its_healthcheck_passes(stack: Stack) -> None:
    health = httpx.get(f"{stack.api_url}/api/v1/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert httpx.get(f"{stack.api_url}/", timeout=10).status_code == 200  # the dashboard
    check = stack.healthcheck("api")
    assert check.returncode == 0, check.stderr


def test_the_worker_answers_its_healthcheck_and_runs_the_fan_out(stack: Stack) -> None:
    wait_for(lambda: stack.healthcheck("worker").returncode == 0, 60, "the worker's ping")
    check = stack.healthcheck("worker")
    assert check.returncode == 0 and "pong" in check.stdout, check.stdout + check.stderr
    run_id = stack.trigger(_sha())["run_id"]
    # runs.fan_out went through Redis: only the worker can have created the jobs
    status = wait_for(
        lambda: (s := httpx.get(f"{stack.api_url}/api/v1/runs/{run_id}", timeout=10).json())["jobs"] and s,
        60,
        "the worker's fan-out",
    )
    assert status["fanned_out_at"] and {j["suite"] for j in status["jobs"]} == {ABSENT_SUITE}


def test_beat_answers_its_healthcheck_and_sends_the_sweeps_the_worker_runs(stack: Stack) -> None:
    wait_for(lambda: stack.healthcheck("beat").returncode == 0, 60, "beat's ping")
    assert "pong" in stack.healthcheck("beat").stdout
    # the sweeps are due every BENCH_REAPER_INTERVAL_S (15 s by default) after beat starts
    wait_for(
        lambda: "Sending due task fan-out-stale-runs" in stack.procs.log("beat"), 60, "beat's first sweep"
    )
    ran = re.compile(r"Task runs\.fan_out_stale\[[0-9a-f-]+\] succeeded")
    wait_for(lambda: ran.search(stack.procs.log("worker")), 30, "the worker running it")


def test_the_runner_registers_polls_and_reports_the_job_it_got(stack: Stack) -> None:
    def registered() -> dict[str, Any] | None:
        rows = httpx.get(f"{stack.api_url}/api/v1/runners", timeout=10).json()["items"]
        return next((r for r in rows if r["name"] == "runner-cpu-1"), None)

    runner = wait_for(registered, 90, "the runner's registration")
    assert runner["labels"] == ["cpu"] and runner["status"] == "online"
    config = stack.runner_state / "config.toml"  # in the volume, holding the runner's token
    assert stat.S_IMODE(config.stat().st_mode) == 0o600

    sha = _sha()
    run_id = stack.trigger(sha)["run_id"]

    def finished() -> dict[str, Any] | None:
        jobs = httpx.get(f"{stack.api_url}/api/v1/runs/{run_id}", timeout=10).json()["jobs"]
        return jobs[0] if jobs and jobs[0]["state"] in ("succeeded", "failed") else None

    # claimed through the long poll, run (the suite is absent: a setup failure), posted, finished
    job = wait_for(finished, 90, "the runner to finish the job")
    assert (job["state"], job["failure_class"]) == ("failed", "setup"), job
    failures = httpx.get(
        f"{stack.api_url}/api/v1/failures", params={"project": "exo", "commit": sha}, timeout=10
    )
    (failure,) = failures.json()["items"]
    assert failure["failure_class"] == "setup" and ABSENT_SUITE in failure["message"]
    wait_for(lambda: stack.healthcheck("runner-cpu").returncode == 0, 30, "the runner's healthcheck")


def test_the_database_and_broker_healthchecks_pass_against_this_machines_services(stack: Stack) -> None:
    for name in ("postgres", "redis"):
        test = argv(stack.services[name]["healthcheck"]["test"])
        assert test[0] == "CMD"
        done = run(test[1:], container_env({}, {}, stack.localize), stack.workdir, timeout=30)
        assert done.returncode == 0, (name, done.stdout, done.stderr)


def test_stopped_services_exit_cleanly_and_fail_their_healthchecks(stack: Stack) -> None:
    """Last: `docker stop` sends SIGTERM; the agent exits 0, the API after its graceful shutdown
    (uvicorn then re-raises the signal: Docker shows 143), the worker and beat 0; each one's
    healthcheck then reports it gone."""
    codes = stack.procs.stop("runner-cpu", "api")
    assert codes == {"runner-cpu": 0, "api": -signal.SIGTERM}, stack.procs.log("runner-cpu")[-2000:]
    assert "agent stopped" in stack.procs.log("runner-cpu")
    assert "Application shutdown complete." in stack.procs.log("api")
    assert stack.healthcheck("api").returncode != 0
    assert stack.healthcheck("runner-cpu").returncode != 0
    # the worker's ping names its own node: with the worker gone it fails while beat answers
    assert stack.procs.stop("worker") == {"worker": 0}, stack.procs.log("worker")[-2000:]
    assert stack.healthcheck("worker").returncode != 0
    assert stack.healthcheck("beat").returncode == 0
    assert stack.procs.stop("beat") == {"beat": 0}, stack.procs.log("beat")[-2000:]
    assert stack.healthcheck("beat").returncode != 0


def test_the_runner_without_a_registration_token_says_how_to_get_one(tmp_path: Path) -> None:
    localize = _localizer(tmp_path, "http://127.0.0.1:9")
    (tmp_path / "runner-state").mkdir()
    runner = resolve(example_env(**FILLED))["services"]["runner-cpu"]
    env = container_env(RUNNER_IMAGE_ENV, runner["environment"], localize)
    done = run(localize.argv(argv(runner["command"])), env, tmp_path, timeout=60)
    assert done.returncode == 2
    assert "bench-server token create --name runner-cpu --scope register" in done.stderr
    assert not (tmp_path / "runner-state" / "config.toml").exists()
