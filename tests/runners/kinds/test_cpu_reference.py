"""`runners/suites/cpu-reference.toml` for real: the llama.cpp reference engine (under its AMX
guard), the serving and local-gen kinds against it, and a gloo all_reduce between two ranks;
then the same suite through `bench-runner execute` into a live API server and back out of
`GET /api/v1/results`."""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from bench_runner.cli import main
from bench_runner.engine.cpu_quirks import needs_amx_guard
from bench_runner.process import free_port
from bench_runner.records import ResultRecord
from bench_runner.suite import load_suite

from .conftest import SUITES_DIR, run

pytestmark = [pytest.mark.engine, pytest.mark.slow]
pytest.importorskip("llama_cpp")
pytest.importorskip("torch")

SUITE = SUITES_DIR / "cpu-reference.toml"
ISL, OSL, CONC, PROMPTS = 32, 16, 2, 12
SIZES = [8, 32, 128, 512, 2048, 8192, 32768]  # -b 8 -e 64K -f 4


def _check_records(results: list[Any]) -> None:
    """The records of one cpu-reference run (ResultRecords, or rows from the API)."""

    def get(r: Any, key: str) -> Any:
        return getattr(r, key) if isinstance(r, ResultRecord) else r[key]

    by: dict[tuple[str, str], list[Any]] = {}
    for r in results:
        by.setdefault((get(r, "benchmark"), get(r, "metric")), []).append(r)

    def one(bench: str, metric: str) -> Any:
        [r] = by[(bench, metric)]
        return r

    def value(bench: str, metric: str) -> float:
        return float(get(one(bench, metric), "value"))

    serve = "serving-32x16-c2"
    params = get(one(serve, "mean_ttft_ms"), "params")
    assert params == {"isl": ISL, "osl": OSL, "concurrency": CONC, "num_prompts": PROMPTS, "seed": 1}
    assert value(serve, "failed_requests") == 0
    for m in ("mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "mean_itl_ms", "mean_e2el_ms"):
        assert value(serve, m) > 0, m
    assert value(serve, "p99_ttft_ms") >= value(serve, "median_ttft_ms")
    assert value(serve, "mean_e2el_ms") > value(serve, "mean_ttft_ms")
    rps, out_tps = value(serve, "request_throughput"), value(serve, "output_throughput")
    # EOS suppressed: every request generates OSL tokens (retokenised text: +-2)
    assert OSL - 2 <= out_tps / rps <= OSL + 2
    # prompts are exactly ISL tokens through the engine's tokenizer
    assert value(serve, "total_token_throughput") == pytest.approx(out_tps + rps * ISL, rel=1e-9)
    # a closed loop of CONC users: each user's requests take mean E2EL back to back
    assert rps == pytest.approx(CONC / (value(serve, "mean_e2el_ms") / 1000.0), rel=0.35)

    gen = "local-gen-pp32-tg16"
    assert value(gen, "prefill_tok_s") > 0 and value(gen, "generation_tok_s") > 0

    coll = "gloo-all-reduce-2r"
    # torch's all_reduce is in place only: no out-of-place busbw/algbw/time_us records
    assert (coll, "busbw") not in by
    busbw = by[(coll, "busbw_inplace")]
    assert sorted(get(r, "params")["size_bytes"] for r in busbw) == SIZES
    assert all(float(get(r, "value")) > 0 for r in busbw)
    assert all(get(r, "params")["nranks"] == 2 and get(r, "params")["backend"] == "gloo" for r in busbw)
    assert value(coll, "avg_busbw") > 0
    assert len(by[(coll, "time_us_inplace")]) == len(SIZES)


def test_cpu_reference_suite_end_to_end(tmp_path: Path) -> None:
    suite = load_suite(SUITE)
    started = time.monotonic()
    out = run(suite, tmp_path)
    took = time.monotonic() - started
    assert out.failures == [], out.log[-6000:]  # no #wrong, no failed request, engine alive
    assert took < 90, f"{took:.0f} s"
    _check_records(out.results)
    ttft = next(r for r in out.results if r.metric == "mean_ttft_ms")
    assert ttft.samples is not None and len(ttft.samples) == PROMPTS and min(ttft.samples) > 0
    assert ttft.value == pytest.approx(statistics.fmean(ttft.samples), rel=1e-9)
    [start] = [line for line in out.log.splitlines() if line.startswith("starting engine: ")]
    assert "llama_cpp.server" in start and "{reference_engine}" not in start
    assert ("bench_runner.engine.cpu_quirks" in start) == needs_amx_guard()  # SIGILL guard where needed


# -- through `bench-runner execute` into a live API ---------------------------------------------


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Any]:
    pytest.importorskip("bench_server.app")
    pytest.importorskip("uvicorn")
    from bench_server.auth.service import create_token
    from bench_server.kit.db import Database
    from bench_server.kit.migrate import upgrade
    from bench_server.models import Project
    from tests.runners.agent.test_real_server import Api

    db_url = f"sqlite:///{tmp_path / 'bench.db'}"
    upgrade(db_url)
    db = Database.from_url(db_url)
    with db.transaction() as session:
        session.add(Project(slug="demo", name="demo", default_branch="main", clone_url=str(tmp_path / "t")))
        tokens = {s: create_token(session, f"test-{s}", [s]).token for s in ("runner", "ci")}
    db.engine.dispose()
    server = Api(f"http://127.0.0.1:{free_port()}", db_url, tokens, tmp_path / "api.log")
    try:
        yield server.start()
    finally:
        server.stop()


def _target_repo(path: Path) -> str:
    env = {
        "GIT_AUTHOR_NAME": "Bench Test",
        "GIT_AUTHOR_EMAIL": "bench@example.org",
        "GIT_COMMITTER_NAME": "Bench Test",
        "GIT_COMMITTER_EMAIL": "bench@example.org",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
        "PATH": "/usr/bin:/bin",
    }
    path.mkdir()

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=path, env=env, check=True, capture_output=True, text=True
        ).stdout

    git("init", "-q", "-b", "main")
    (path / "README").write_text("target\n")
    git("add", "README")
    git("commit", "-q", "-m", "the commit under test")
    return git("rev-parse", "HEAD").strip()


def test_execute_posts_the_suite_to_the_api(
    api: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_RUNNER_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.delenv("GITHUB_RUN_ID", raising=False)
    target = tmp_path / "target"
    sha = _target_repo(target)
    args = ["execute", "--suite", str(SUITE), "--sha", sha, "--project", "demo", "--branch", "main"]
    args += ["--checkout", str(target), "--server", api.url, "--token", api.tokens["runner"]]
    args += ["--hardware-class", "cpu-x86_64", "--work-dir", str(tmp_path / "work")]
    args += ["--spool-dir", str(tmp_path / "spool"), "--strict"]
    assert main(args) == 0  # posted, and (--strict) no benchmark failed

    rows = httpx.get(
        f"{api.url}/api/v1/results",
        params={"project": "demo", "commit": sha, "suite": "cpu-reference", "limit": 1000},
        timeout=10,
    ).json()["items"]
    assert {r["benchmark"] for r in rows} == {"serving-32x16-c2", "local-gen-pp32-tg16", "gloo-all-reduce-2r"}
    assert all(r["hardware_class"] == "cpu-x86_64" and r["suite"] == "cpu-reference" for r in rows)
    _check_records(rows)
    failures = httpx.get(f"{api.url}/api/v1/failures", params={"project": "demo"}, timeout=10).json()
    assert failures["items"] == []
    assert list((tmp_path / "spool").glob("*.json")) == []
