"""HTTP client against a real local server, and the 0600 config file."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from bench_runner.client import (
    AuthError,
    BenchClient,
    Conflict,
    NotFound,
    Rejected,
    ServerUnavailable,
    api_base,
    tail,
)
from bench_runner.config import ConfigError, RunnerConfig, default_config_path, load_config, save_config

from .fakeserver import FakeServer


def test_api_base() -> None:
    assert api_base("https://b.example.org") == "https://b.example.org/api/v1"
    assert api_base("https://b.example.org/api/v1/") == "https://b.example.org/api/v1"


def test_retries_5xx_then_succeeds_resending_the_same_batch(server: FakeServer) -> None:
    server.state.unavailable = 2
    sleeps: list[float] = []
    batch = {"idempotency_key": "k1", "results": [{"metric": "x", "value": 1.0}]}
    with BenchClient(server.url, "runner-token", retries=3, backoff=0.01, sleep=sleeps.append) as c:
        answer = c.post_results(batch)
    assert answer["duplicate"] is False
    sent = server.state.seen("POST", "/api/v1/results")
    assert len(sent) == 3
    assert {s.body for s in sent} == {sent[0].body} and sent[0].json() == batch  # the same key each time
    # backoff grows: 0.01 x 2^n plus up to 0.01 of jitter
    assert len(sleeps) == 2 and 0.01 <= sleeps[0] <= 0.02 and 0.02 <= sleeps[1] <= 0.03


def test_5xx_that_lasts_raises_server_unavailable(server: FakeServer) -> None:
    server.state.unavailable = 10
    with (
        BenchClient(server.url, "runner-token", retries=2, backoff=0.001, max_backoff=0.002) as c,
        pytest.raises(ServerUnavailable, match="HTTP 503.*3 attempts") as info,
    ):
        c.post_results({"idempotency_key": "k"})
    assert info.value.status == 503
    assert len(server.state.seen("POST", "/api/v1/results")) == 3


def test_connection_refused_raises_server_unavailable() -> None:
    srv = FakeServer().start()
    url = srv.url
    srv.stop()
    with (
        BenchClient(url, "t", retries=2, backoff=0.01) as c,
        pytest.raises(ServerUnavailable, match="ConnectError.*3 attempts"),
    ):
        c.post_results({"idempotency_key": "k"})


def test_connection_refused_is_retried_until_the_server_is_back() -> None:
    srv = FakeServer().start()
    srv.stop()  # down; it comes back on the same port while the client waits to retry
    sleeps: list[float] = []

    def wait_and_restart(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            srv.start()

    try:
        with BenchClient(srv.url, "runner-token", retries=4, backoff=0.001, sleep=wait_and_restart) as c:
            answer = c.post_results({"idempotency_key": "k-outage", "results": []})
    finally:
        srv.stop()
    assert answer["duplicate"] is False and len(sleeps) == 2  # two refused, the third stored
    assert [s.json()["idempotency_key"] for s in srv.state.seen("POST", "/api/v1/results")] == ["k-outage"]


def test_4xx_raise_typed_errors_with_body(server: FakeServer) -> None:
    with BenchClient(server.url, "bad", retries=3, backoff=0.01) as c, pytest.raises(AuthError) as info:
        c.heartbeat()
    assert (info.value.status, info.value.error) == (401, "unauthorized")
    assert "bearer token" in str(info.value.detail)
    assert len(server.state.requests) == 1  # a 4xx is not retried

    server.state.lease_conflict.add(3)
    with BenchClient(server.url, "runner-token") as c:
        with pytest.raises(Conflict) as conflict:
            c.renew_lease(3)
        assert conflict.value.error == "lease_lost"
        with pytest.raises(Rejected) as rejected:
            c.post_results({"results": []})
        assert rejected.value.detail == [{"loc": ["idempotency_key"], "msg": "required"}]
        with pytest.raises(NotFound):
            c.request("GET", "/nowhere")


def test_claim_job_or_nothing(server: FakeServer) -> None:
    job = {
        "id": 42,
        "project": {"slug": "demo", "clone_url": "/x", "default_branch": "main"},
        "commit": {"sha": "a" * 40, "branch": "main"},
        "suite": "smoke",
        "hardware_class": "cpu-x86_64",
        "attempt": 2,
        "lease_expires_at": "2030-01-01T00:00:00Z",
        "lease_seconds": 90,
    }
    server.state.jobs.append(job)
    with BenchClient(server.url, "runner-token") as c:
        got = c.claim(wait=1)
        assert got is not None and (got.id, got.sha, got.attempt, got.lease_seconds) == (
            42,
            "a" * 40,
            2,
            90.0,
        )
        assert c.claim(wait=1) is None  # 204 after the wait
    assert server.state.seen("POST", "/api/v1/jobs/claim")[0].query["wait"] == ["1"]


def test_log_upload_is_tail_capped(server: FakeServer) -> None:
    log = "".join(f"line {i:06d} {'x' * 50}\n" for i in range(5000))  # ~300 KB
    with BenchClient(server.url, "runner-token") as c:
        c.upload_log(9, log, limit=64 * 1024)
    got = server.state.logs[9]
    assert len(got.encode()) <= 64 * 1024 + 100
    assert got.endswith(f"line 004999 {'x' * 50}\n")
    assert got.startswith("[... log truncated ...]\nline ")
    assert tail("short") == "short"


# -- config ------------------------------------------------------------------------------------


def _config() -> RunnerConfig:
    return RunnerConfig(
        server_url="https://b.example.org",
        token="s3cret-token",
        name="cpu-1",
        hardware_class="cpu-x86_64",
        runner_id=7,
        labels=["cpu", "demo"],
    )


@pytest.mark.parametrize("filename", ["config.toml", "config.json"])
def test_config_written_0600_and_round_trips(tmp_path: Path, filename: str) -> None:
    path = tmp_path / "fresh" / "bench-runner" / filename
    save_config(_config(), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_config(path) == _config()
    if filename.endswith(".json"):
        assert json.loads(path.read_text())["token"] == "s3cret-token"


def test_config_rewrite_tightens_existing_permissions(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("old = 1\n")
    os.chmod(path, 0o644)
    save_config(_config(), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".config.toml.")]  # no temp left


def test_config_location_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_RUNNER_CONFIG", str(tmp_path / "elsewhere.toml"))
    assert default_config_path() == tmp_path / "elsewhere.toml"
    save_config(_config())
    assert (tmp_path / "elsewhere.toml").exists() and load_config().name == "cpu-1"
    monkeypatch.delenv("BENCH_RUNNER_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert default_config_path() == tmp_path / "xdg" / "bench-runner" / "config.toml"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('server_url = "x"\ntoken = "t"\nname = "n"\n', "hardware_class: required"),
        (
            'server_url = "x"\ntoken = "t"\nname = "n"\nhardware_class = "c"\nlabels = "a"\n',
            "labels: must be",
        ),
        ('server_url = "x"\ntoken = "t"\nname = "n"\nhardware_class = "c"\ncolour = 1\n', "unknown field"),
        ("server_url = ", "not valid TOML"),
    ],
)
def test_config_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_missing_config_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="bench-runner register"):
        load_config(tmp_path / "none.toml")
