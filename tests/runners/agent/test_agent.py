"""The agent loop and the register/execute commands against a real local HTTP server."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from bench_runner.agent import Agent
from bench_runner.cli import main
from bench_runner.config import load_config

from .conftest import Repo
from .fakeserver import FakeServer

PY = sys.executable


def make_job(repo: Repo, job_id: int = 42, suite: str = "smoke", attempt: int = 1) -> dict[str, Any]:
    return {
        "id": job_id,
        "project": {"slug": "demo", "clone_url": repo.url, "default_branch": "main"},
        "commit": {"sha": repo.shas[1], "branch": "main"},
        "suite": suite,
        "hardware_class": "cpu-x86_64",
        "attempt": attempt,
        "lease_expires_at": "2030-01-01T00:00:00Z",
        "lease_seconds": 0.6,
    }


def write_suites(root: Path, pidfile: Path | None = None, sleep_s: float = 0.5) -> Path:
    suites = root / "suites"
    suites.mkdir(exist_ok=True)
    (suites / "smoke.toml").write_text(
        textwrap.dedent(f"""
        name = "smoke"
        [build]
        commands = ["echo built > build.txt"]
        [[benchmark]]
        name = "gen"
        kind = "command"
        command = "sleep {sleep_s} && {PY} bench.py ok 33"
        params = {{ isl = 16 }}
        [[benchmark]]
        name = "crashes"
        kind = "command"
        command = "{PY} bench.py crash"
    """)
    )
    if pidfile is not None:
        (suites / "long.toml").write_text(
            textwrap.dedent(f"""
            name = "long"
            [[benchmark]]
            name = "sleeps"
            kind = "command"
            command = ["{PY}", "bench.py", "sleep", "{pidfile}"]
            timeout = 120
        """)
        )
    return suites


def make_agent(server: FakeServer, tmp_path: Path, suites: Path, **kw: Any) -> Agent:
    return Agent(
        server.url,
        "runner-token",
        runner_id=7,
        hardware_class="cpu-x86_64",
        fingerprint={"kind": "machine", "arch": "x86_64"},
        suites_dir=suites,
        work_dir=tmp_path / "work",
        spool_dir=tmp_path / "spool",
        hostname="bench-test",
        wait=0.3,
        heartbeat_interval=0.1,
        lease_interval=0.1,
        log=lambda _line: None,
        client_options={"retries": 1, "backoff": 0.01, "timeout": 5},
        **kw,
    )


def test_agent_runs_a_job_end_to_end(server: FakeServer, git_repo: Repo, tmp_path: Path) -> None:
    server.state.jobs.append(make_job(git_repo))
    agent = make_agent(server, tmp_path, write_suites(tmp_path))
    assert agent.run(max_jobs=1) == 0

    st = server.state
    assert st.started == [42]
    assert "== suite smoke" in st.logs[42] and "boom" in st.logs[42]
    assert st.stored_order == ["runner-7/job-42/attempt-1"]
    payload = st.stored["runner-7/job-42/attempt-1"]
    assert payload["job_id"] == 42 and payload["project"] == "demo"
    assert payload["commit"]["sha"] == git_repo.shas[1] and payload["commit"]["branch"] == "main"
    assert payload["commit"]["parents"] == [git_repo.shas[0]]
    assert payload["machine"] == {
        "hardware_class": "cpu-x86_64",
        "fingerprint": {"kind": "machine", "arch": "x86_64"},
        "hostname": "bench-test",
    }
    assert {(r["benchmark"], r["metric"], r["value"]) for r in payload["results"]} == {
        ("gen", "tokens_per_s", 33.0),
        ("gen", "ttft_ms", 12.0),
    }
    assert [(f["benchmark"], f["failure_class"]) for f in payload["failures"]] == [("crashes", "crash")]
    assert st.finished[42]["state"] == "failed" and st.finished[42]["failure_class"] == "crash"
    assert st.seen("POST", "/api/v1/jobs/42/lease"), "the lease was renewed while the job ran"
    beats = st.seen("POST", "/api/v1/runners/heartbeat")
    assert beats and all(b.json() == {} for b in beats)
    assert list((tmp_path / "spool").glob("*.json")) == []


def test_what_a_kind_reports_reaches_the_posted_batch_context(
    server: FakeServer, git_repo: Repo, tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    suites = write_suites(tmp_path)
    (suites / "coll.toml").write_text(
        textwrap.dedent("""
        name = "coll"
        [[benchmark]]
        name = "ar"
        kind = "collectives"
        params = { backend = "gloo", np = 2, min_bytes = 64, max_bytes = "4K", step_factor = 64, iters = 2 }
    """)
    )
    server.state.jobs.append(make_job(git_repo, suite="coll"))
    assert make_agent(server, tmp_path, suites).run(max_jobs=1) == 0
    payload = server.state.stored["runner-7/job-42/attempt-1"]
    assert payload["failures"] == [] and {r["metric"] for r in payload["results"]} >= {"busbw_inplace"}
    assert payload["context"] == {
        "suite": "coll",
        "runner_version": payload["context"]["runner_version"],
        "attempt": 1,
        "collectives": {
            "ar": {
                "all_reduce": {
                    "placements": ["in_place"],
                    "not_measured": {"out_of_place": "torch.distributed.all_reduce has no out-of-place form"},
                }
            }
        },
    }


def test_lease_conflict_stops_the_job_and_drops_it(
    server: FakeServer, git_repo: Repo, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pid"
    server.state.jobs.append(make_job(git_repo, suite="long"))
    agent = make_agent(server, tmp_path, write_suites(tmp_path, pidfile))

    def cancel_when_running() -> None:  # the server cancels the job while its benchmark runs
        server.state.wait_for(pidfile.exists, timeout=30)
        server.state.lease_conflict.add(42)

    threading.Thread(target=cancel_when_running, daemon=True).start()
    started = time.monotonic()
    assert agent.run(max_jobs=1) == 0
    assert time.monotonic() - started < 20
    assert pidfile.exists()
    pid = pidfile.read_text()
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    assert server.state.stored == {} and 42 not in server.state.finished and server.state.released == []


def test_results_spooled_while_ingest_is_down_then_delivered(
    server: FakeServer, git_repo: Repo, tmp_path: Path
) -> None:
    server.state.unavailable = 1000  # /results answers 503, the job endpoints work
    server.state.jobs.append(make_job(git_repo, attempt=3))
    agent = make_agent(server, tmp_path, write_suites(tmp_path, sleep_s=0))
    agent.run(max_jobs=1)
    assert server.state.stored == {}
    assert server.state.finished[42]["state"] == "failed"
    spooled = list((tmp_path / "spool").glob("*.json"))
    assert (
        len(spooled) == 1
        and json.loads(spooled[0].read_text())["idempotency_key"] == "runner-7/job-42/attempt-3"
    )
    server.state.unavailable = 0
    agent2 = make_agent(server, tmp_path, write_suites(tmp_path))
    agent2.run(max_jobs=0)  # the loop delivers the spool before claiming
    assert server.state.stored_order == ["runner-7/job-42/attempt-3"]
    assert list((tmp_path / "spool").glob("*.json")) == []


def test_unknown_suite_is_a_recorded_setup_failure(
    server: FakeServer, git_repo: Repo, tmp_path: Path
) -> None:
    server.state.jobs.append(make_job(git_repo, suite="nope"))
    agent = make_agent(server, tmp_path, write_suites(tmp_path))
    agent.run(max_jobs=1)
    payload = server.state.stored["runner-7/job-42/attempt-1"]
    assert payload["results"] == []
    assert (
        payload["failures"][0]["failure_class"] == "setup"
        and "'nope' not found" in payload["failures"][0]["message"]
    )
    assert server.state.finished[42]["failure_class"] == "setup"


# -- the process: SIGTERM -------------------------------------------------------------------


def start_agent_process(
    server: FakeServer, tmp_path: Path, suites: Path, grace: float
) -> subprocess.Popen[str]:
    config = tmp_path / "config.toml"
    config.write_text(
        f'server_url = "{server.url}"\ntoken = "runner-token"\nname = "t"\n'
        f'hardware_class = "cpu-x86_64"\nrunner_id = 7\n'
    )
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "BENCH_RUNNER_CONFIG": str(config)}
    return subprocess.Popen(
        [
            PY,
            "-m",
            "bench_runner.cli",
            "agent",
            "--suites-dir",
            str(suites),
            "--work-dir",
            str(tmp_path / "work"),
            "--grace",
            str(grace),
            "--wait",
            "1",
            "--heartbeat",
            "0.5",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigterm_releases_a_job_that_cannot_finish_in_grace(
    server: FakeServer, git_repo: Repo, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pid"
    job = make_job(git_repo, suite="long")
    job["lease_seconds"] = 30
    server.state.jobs.append(job)
    proc = start_agent_process(server, tmp_path, write_suites(tmp_path, pidfile), grace=1)
    try:
        assert server.state.wait_for(pidfile.exists, timeout=30), proc.stderr and proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert server.state.released == [42]
    assert server.state.stored == {} and 42 not in server.state.finished
    assert "grace period over" in err
    assert (
        not Path(f"/proc/{pidfile.read_text()}").exists()
        or "Z" in Path(f"/proc/{pidfile.read_text()}/stat").read_text().split()[2]
    )


def test_sigterm_lets_a_short_job_finish(server: FakeServer, git_repo: Repo, tmp_path: Path) -> None:
    job = make_job(git_repo)
    job["lease_seconds"] = 30
    server.state.jobs.append(job)
    proc = start_agent_process(server, tmp_path, write_suites(tmp_path, sleep_s=2), grace=60)
    try:
        assert server.state.wait_for(lambda: 42 in server.state.started, timeout=30)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert server.state.released == []
    assert server.state.finished[42]["state"] == "failed"  # its crash benchmark failed; the job completed
    assert server.state.stored_order == ["runner-7/job-42/attempt-1"]


# -- register and execute -------------------------------------------------------------------


def test_register_writes_private_config(server: FakeServer, tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "config.toml"
    assert (
        main(
            [
                "register",
                "--server",
                server.url,
                "--registration-token",
                "reg-token",
                "--name",
                "ci-cpu-1",
                "--label",
                "cpu",
                "--suites-dir",
                str(tmp_path),
                "--config",
                str(path),
            ]
        )
        == 0
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    cfg = load_config(path)
    assert (cfg.token, cfg.runner_id, cfg.name, cfg.labels) == ("runner-token-7", 7, "ci-cpu-1", ["cpu"])
    assert cfg.hardware_class.startswith("cpu-")
    body = server.state.seen("POST", "/api/v1/runners/register")[0].json()
    assert body["name"] == "ci-cpu-1" and body["hardware_class"] == cfg.hardware_class
    assert "hostname" not in json.dumps(body["fingerprint"]) and body["fingerprint"]["kind"] == "machine"

    other = tmp_path / "other.toml"
    assert (
        main(
            [
                "register",
                "--server",
                server.url,
                "--registration-token",
                "wrong",
                "--name",
                "x",
                "--config",
                str(other),
            ]
        )
        == 1
    )
    assert not other.exists()


@pytest.fixture
def no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_RUNNER_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("GITHUB_RUN_ID", raising=False)


def execute_args(suite: Path, repo: Repo, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "execute",
        "--suite",
        str(suite),
        "--sha",
        repo.shas[1],
        "--project",
        "demo",
        "--branch",
        "pr-5",
        "--checkout",
        str(repo.path),
        "--work-dir",
        str(tmp_path / "work"),
        "--spool-dir",
        str(tmp_path / "spool"),
        "--hardware-class",
        "cpu-x86_64",
        *extra,
    ]


@pytest.mark.usefixtures("no_user_config")
def test_execute_posts_once_per_key(
    server: FakeServer, git_repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = write_suites(tmp_path, sleep_s=0) / "smoke.toml"
    args = execute_args(
        suite,
        git_repo,
        tmp_path,
        "--server",
        server.url,
        "--token",
        "runner-token",
        "--idempotency-key",
        "gh/123/1/smoke",
    )
    assert main(args) == 0
    assert main([*args, "--strict"]) == 1  # same key: a duplicate; --strict reports the crash failure
    assert server.state.stored_order == ["gh/123/1/smoke"]
    payload = server.state.stored["gh/123/1/smoke"]
    assert payload["commit"]["branch"] == "pr-5" and payload["commit"]["sha"] == git_repo.shas[1]
    assert payload["machine"]["hardware_class"] == "cpu-x86_64" and "job_id" not in payload
    assert payload["context"]["mode"] == "execute"
    assert "already stored" in capsys.readouterr().err


@pytest.mark.usefixtures("no_user_config")
def test_execute_dry_run_prints_payload(
    git_repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = write_suites(tmp_path, sleep_s=0) / "smoke.toml"
    assert main([*execute_args(suite, git_repo, tmp_path), "--dry-run"]) == 0
    captured = capsys.readouterr()
    payload = json.loads(captured.out)
    assert payload["project"] == "demo" and payload["idempotency_key"].startswith(
        f"execute/demo/{git_repo.shas[1]}/smoke/cpu-x86_64/"
    )
    assert {r["metric"] for r in payload["results"]} == {"tokens_per_s", "ttft_ms"}
    assert "== benchmark gen" in captured.err  # progress on stderr, payload alone on stdout


@pytest.mark.usefixtures("no_user_config")
def test_execute_spools_when_server_is_down(git_repo: Repo, tmp_path: Path) -> None:
    srv = FakeServer().start()
    url = srv.url
    srv.stop()
    suite = write_suites(tmp_path, sleep_s=0) / "smoke.toml"
    assert (
        main([*execute_args(suite, git_repo, tmp_path), "--server", url, "--token", "t", "--retries", "0"])
        == 3
    )
    assert len(list((tmp_path / "spool").glob("*.json"))) == 1
    assert main([*execute_args(suite, git_repo, tmp_path)]) == 2  # no server/token at all
