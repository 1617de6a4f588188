"""Suite format validation and run_suite with real git checkouts and real processes."""

from __future__ import annotations

import copy
import re
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from bench_runner import suite as suite_mod
from bench_runner.records import FailureRecord, ResultRecord
from bench_runner.suite import (
    BenchmarkContext,
    BenchmarkFailure,
    SuiteError,
    find_suite,
    load_suite,
    parse_suite,
    register_kind,
    run_suite,
    substitute,
)

from .conftest import Repo

PY = sys.executable


def suite_from(text: str, tmp_path: Path, name: str = "suite.toml") -> Any:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return load_suite(path)


# -- validation -----------------------------------------------------------------------------

VALID = {
    "name": "smoke",
    "build": {"commands": ["true"]},
    "engine": {
        "command": "serve --port {port}",
        "port": 8080,
        "health_url": "http://127.0.0.1:{port}/health",
    },
    "benchmark": [{"name": "a", "kind": "command", "command": "run", "timeout": 5, "params": {"isl": 128}}],
}


DELETE = object()


def with_change(path: str, value: Any) -> dict[str, Any]:
    """VALID with one field (slash path) replaced, or deleted with DELETE."""
    data: dict[str, Any] = copy.deepcopy(VALID)
    target: Any = data
    keys = path.split("/")
    for k in keys[:-1]:
        target = target[int(k)] if isinstance(target, list) else target[k]
    last = keys[-1]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return data


def test_valid_suite_parses() -> None:
    s = parse_suite(with_change("name", "smoke"))
    assert s.name == "smoke"
    assert s.engine is not None and s.engine.port == 8080
    assert s.benchmarks[0].params == {"isl": 128}
    assert s.benchmarks[0].options["command"] == "run"
    assert s.benchmarks[0].timeout == 5.0


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("name", DELETE, "name: required"),
        ("name", "has space", "name: must be letters, digits"),
        ("colour", "blue", "unknown key 'colour'"),
        ("build/commands", "make", r"\[build\] commands: must be a list"),
        ("build/commands", [""], r"\[build\] commands\[0\]: must be a non-empty string"),
        ("build/timeout", -1, r"\[build\] timeout: must be > 0"),
        ("engine/command", DELETE, r"\[engine\] command: required"),
        ("engine/port", 70000, r"\[engine\] port: must be a TCP port"),
        ("engine/health_url", "localhost:8080", r"\[engine\] health_url: must be an http"),
        ("engine/start_timeout", "soon", r"\[engine\] start_timeout: must be a number"),
        ("benchmark", [], "benchmark: at least one"),
        ("benchmark/0/name", DELETE, r"\[benchmark #1\] name: required"),
        ("benchmark/0/kind", DELETE, r"\[benchmark.a\] kind: required"),
        ("benchmark/0/kind", "comand", r"\[benchmark.a\] kind: unknown kind 'comand'"),
        ("benchmark/0/timeout", 0, r"\[benchmark.a\] timeout: must be > 0"),
        ("benchmark/0/params", "isl=1", r"\[benchmark.a\] params: must be a table"),
        ("benchmark/0/command", DELETE, r"\[benchmark.a\] command: required"),
        ("benchmark/0/comand", "x", r"\[benchmark.a\] unknown key 'comand'"),
    ],
)
def test_validation_names_the_field(path: str, value: Any, message: str) -> None:
    with pytest.raises(SuiteError, match=message):
        parse_suite(with_change(path, value), source="s.toml")


def test_duplicate_benchmark_and_file_errors(tmp_path: Path) -> None:
    data = with_change("name", "smoke")
    data["benchmark"].append(dict(data["benchmark"][0]))
    with pytest.raises(SuiteError, match="duplicate benchmark 'a'"):
        parse_suite(data)
    data["benchmark"][1]["params"] = {"isl": 256}  # same name, other params: another benchmark
    assert len(parse_suite(data).benchmarks) == 2
    (tmp_path / "bad.toml").write_text("name = \n")
    with pytest.raises(SuiteError, match="bad.toml: not valid TOML"):
        load_suite(tmp_path / "bad.toml")
    with pytest.raises(SuiteError, match="no such suite file"):
        load_suite(tmp_path / "absent.toml")


def test_find_suite_by_file_or_name(tmp_path: Path) -> None:
    (tmp_path / "file-name.toml").write_text('name = "declared-name"\n')
    assert find_suite(tmp_path, "declared-name") == tmp_path / "file-name.toml"
    assert find_suite(tmp_path, "file-name") == tmp_path / "file-name.toml"
    with pytest.raises(SuiteError, match="'other' not found"):
        find_suite(tmp_path, "other")


def test_substitute_leaves_shell_variables_alone() -> None:
    out = substitute("echo {sha} ${HOME} {unknown} {params.isl} $HOME", {"sha": "abc", "params": {"isl": 5}})
    assert out == "echo abc ${HOME} {unknown} 5 $HOME"


# -- running ---------------------------------------------------------------------------------


def test_results_crash_timeout_and_the_rest_still_run(tmp_path: Path, git_repo: Repo) -> None:
    pidfile = tmp_path / "sleeper.pid"
    s = suite_from(
        f"""
        name = "smoke"
        [build]
        commands = ["echo built-{{sha}} > build.txt"]
        [[benchmark]]
        name = "gen"
        kind = "command"
        command = "{PY} bench.py ok 42.5"
        params = {{ isl = 128, osl = 64 }}
        [[benchmark]]
        name = "crashes"
        kind = "command"
        command = "{PY} bench.py crash"
        [[benchmark]]
        name = "hangs"
        kind = "command"
        command = ["{PY}", "bench.py", "sleep", "{pidfile}"]
        timeout = 1.5
        [[benchmark]]
        name = "after"
        kind = "command"
        command = "{PY} bench.py ok 7"
        """,
        tmp_path,
    )
    lines: list[str] = []
    sha = git_repo.shas[1]
    out = run_suite(s, tmp_path / "work", sha, repo_url=git_repo.url, log=lines.append)

    by_bench = {(r.benchmark, r.metric): r for r in out.results}
    assert set(by_bench) == {
        ("gen", "tokens_per_s"),
        ("gen", "ttft_ms"),
        ("after", "tokens_per_s"),
        ("after", "ttft_ms"),
    }
    gen = by_bench[("gen", "tokens_per_s")]
    assert (gen.value, gen.unit, gen.direction, gen.suite) == (42.5, "tok/s", "higher", "smoke")
    assert gen.params == {"isl": 128, "osl": 64} and gen.samples == [41.5, 43.5]
    assert by_bench[("after", "tokens_per_s")].value == 7.0

    classes = {f.benchmark: f for f in out.failures}
    assert set(classes) == {"crashes", "hangs"}
    assert classes["crashes"].failure_class == "crash"
    assert "code 3" in classes["crashes"].message
    assert "boom" in (classes["crashes"].log_excerpt or "")
    assert classes["hangs"].failure_class == "timeout"
    assert "sleeping" in (classes["hangs"].log_excerpt or "")

    # the hung process was killed, not left behind
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]

    # build ran in the checkout at the commit, with {sha} substituted
    assert f"built: built-{sha}" in out.log
    assert out.commit["sha"] == sha and out.commit["parents"] == [git_repo.shas[0]]
    assert out.commit["message"].startswith("second commit")
    state, failure_class, message = out.job_state()
    assert (state, failure_class) == ("failed", "crash") and "+1 more" in (message or "")
    assert lines and any("== benchmark hangs" in line for line in lines)


def test_failing_build_is_a_setup_failure_for_every_benchmark(tmp_path: Path, git_repo: Repo) -> None:
    marker = tmp_path / "ran"
    s = suite_from(
        f"""
        name = "smoke"
        [build]
        commands = ["echo compiling", "echo 'error: missing header' >&2; exit 7", "touch {marker}"]
        [[benchmark]]
        name = "one"
        kind = "command"
        command = "touch {marker}"
        [[benchmark]]
        name = "two"
        kind = "command"
        command = "touch {marker}"
        params = {{ c = 2 }}
        """,
        tmp_path,
    )
    out = run_suite(s, tmp_path / "work", git_repo.shas[0], repo_url=git_repo.url)
    assert out.results == []
    assert [(f.benchmark, f.failure_class) for f in out.failures] == [("one", "setup"), ("two", "setup")]
    assert "build step 2 exited with code 7" in out.failures[0].message
    assert "missing header" in (out.failures[0].log_excerpt or "")
    assert out.failures[1].params == {"c": 2}
    assert not marker.exists()  # neither the later build step nor any benchmark ran


def test_checkout_of_unknown_commit_is_a_setup_failure(tmp_path: Path, git_repo: Repo) -> None:
    s = suite_from(
        """
        name = "smoke"
        [[benchmark]]
        name = "one"
        kind = "command"
        command = "true"
        """,
        tmp_path,
    )
    out = run_suite(s, tmp_path / "work", "0" * 40, repo_url=git_repo.url)
    assert [(f.benchmark, f.failure_class) for f in out.failures] == [("one", "setup")]
    assert "checkout" in out.failures[0].message


def test_checkout_cache_is_reused_and_fetches_new_commits(tmp_path: Path, git_repo: Repo) -> None:
    from .conftest import git

    s = suite_from(
        f"""
        name = "smoke"
        [[benchmark]]
        name = "head"
        kind = "command"
        command = "{PY} bench.py size data.txt"
        """,
        tmp_path,
    )
    work = tmp_path / "work"
    assert run_suite(s, work, git_repo.shas[0], repo_url=git_repo.url).ok
    (git_repo.path / "data.txt").write_text("# shorter\n")
    git(git_repo.path, "add", "data.txt")
    git(git_repo.path, "commit", "-q", "-m", "third")
    third = git(git_repo.path, "rev-parse", "HEAD")
    out = run_suite(s, work, third, repo_url=git_repo.url)
    assert out.ok, out.log
    assert out.results[0].value == len("# shorter\n")
    assert len(list((work / "repos").iterdir())) == 1  # one cached clone, fetched
    assert "git fetch" in out.log


@pytest.mark.parametrize(
    ("mode", "failure_class", "message"),
    [
        ("nofile", "wrong_result", "wrote no results file"),
        ("garbage", "wrong_result", "not valid JSON"),
        ("baddirection", "wrong_result", r"results\[0\]: direction must be"),
        ("oom", "oom", "exited with code 1"),
    ],
)
def test_bad_results_are_classified(
    tmp_path: Path, git_repo: Repo, mode: str, failure_class: str, message: str
) -> None:
    s = suite_from(
        f"""
        name = "smoke"
        [[benchmark]]
        name = "b"
        kind = "command"
        command = "{PY} bench.py {mode}"
        """,
        tmp_path,
    )
    out = run_suite(s, tmp_path / "work", git_repo.shas[0], repo_url=git_repo.url)
    assert out.results == []
    assert len(out.failures) == 1
    assert out.failures[0].failure_class == failure_class
    assert re.search(message, out.failures[0].message), out.failures[0].message


def test_engine_started_for_benchmarks_and_stopped(tmp_path: Path, git_repo: Repo) -> None:
    s = suite_from(
        f"""
        name = "with-engine"
        [engine]
        command = "{PY} -m http.server {{port}} --bind 127.0.0.1"
        health_url = "http://127.0.0.1:{{port}}/"
        start_timeout = 20
        [[benchmark]]
        name = "uses-engine"
        kind = "command"
        command = "{PY} bench.py engine"
        """,
        tmp_path,
    )
    out = run_suite(s, tmp_path / "work", git_repo.shas[0], repo_url=git_repo.url)
    assert out.ok, out.log
    assert out.results[0].metric == "engine_bytes" and out.results[0].value > 0
    assert "engine ready on port" in out.log and "engine stopped" in out.log


def test_engine_that_dies_is_an_engine_start_failure(tmp_path: Path, git_repo: Repo) -> None:
    s = suite_from(
        f"""
        name = "bad-engine"
        [engine]
        command = "echo 'model file not found'; exit 2"
        start_timeout = 10
        [[benchmark]]
        name = "one"
        kind = "command"
        command = "{PY} bench.py ok"
        [[benchmark]]
        name = "two"
        kind = "command"
        command = "{PY} bench.py ok"
        """,
        tmp_path,
    )
    out = run_suite(s, tmp_path / "work", git_repo.shas[0], repo_url=git_repo.url)
    assert [(f.benchmark, f.failure_class) for f in out.failures] == [
        ("one", "engine_start"),
        ("two", "engine_start"),
    ]
    assert "exited before it was healthy (exit code 2)" in out.failures[0].message
    assert "model file not found" in (out.failures[0].log_excerpt or "")


@pytest.mark.parametrize(
    ("command", "failure_class", "message"),
    [
        ("sleep 30", "engine_start", "not ready after 1 s"),
        ("echo 'ggml: failed to allocate buffer: out of memory'; exit 1", "oom", "before it was healthy"),
    ],
)
def test_engine_not_healthy_is_classified(
    tmp_path: Path, git_repo: Repo, command: str, failure_class: str, message: str
) -> None:
    s = suite_from(
        f"""
        name = "unhealthy"
        [engine]
        command = "{command}"
        health_url = "http://127.0.0.1:{{port}}/health"
        start_timeout = 1
        stop_timeout = 2
        [[benchmark]]
        name = "one"
        kind = "command"
        command = "{PY} bench.py ok"
        """,
        tmp_path,
    )
    started = time.monotonic()
    out = run_suite(s, tmp_path / "work", git_repo.shas[0], repo_url=git_repo.url)
    assert time.monotonic() - started < 15
    assert [(f.benchmark, f.failure_class) for f in out.failures] == [("one", failure_class)]
    assert message in out.failures[0].message
    assert out.results == []


BAD_ALLOC = "echo \"terminate called after throwing an instance of 'std::bad_alloc'\"; exit 134"


def test_bad_alloc_is_oom_for_an_engine_and_for_a_command(tmp_path: Path, git_repo: Repo) -> None:
    """One classifier for every process: the C++ allocator's message means out of memory."""
    command = suite_from(
        f"""
        name = "cmd"
        [[benchmark]]
        name = "b"
        kind = "command"
        command = '''{BAD_ALLOC}'''
        """,
        tmp_path,
        "cmd.toml",
    )
    engine = suite_from(
        f"""
        name = "eng"
        [engine]
        command = '''{BAD_ALLOC}'''
        start_timeout = 10
        [[benchmark]]
        name = "b"
        kind = "command"
        command = "true"
        """,
        tmp_path,
        "eng.toml",
    )
    for suite, message in ((command, "exited with code 134"), (engine, "before it was healthy")):
        out = run_suite(suite, tmp_path / "work", git_repo.shas[0], repo_url=git_repo.url)
        assert [(f.benchmark, f.failure_class) for f in out.failures] == [("b", "oom")], out.log
        assert message in out.failures[0].message
        assert "std::bad_alloc" in (out.failures[0].log_excerpt or "")


def test_engine_seam_accepts_another_lifecycle(tmp_path: Path, git_repo: Repo) -> None:
    import contextlib

    calls: list[str] = []

    @contextlib.contextmanager
    def fake_starter(spec: Any, cwd: Path, env: Any, log: Any, values: Any) -> Any:
        calls.append(f"start {spec.command} in {cwd.name}")
        yield suite_mod.EngineHandle(base_url="http://127.0.0.1:9", port=9)
        calls.append("stop")

    s = suite_from(
        f"""
        name = "seam"
        [engine]
        command = "whatever"
        [[benchmark]]
        name = "env"
        kind = "command"
        command = "{PY} bench.py port"
        """,
        tmp_path,
    )
    out = run_suite(
        s, tmp_path / "work", git_repo.shas[0], repo_url=git_repo.url, engine_starter=fake_starter
    )
    assert out.ok, out.log
    assert out.results[0].value == 9
    assert calls[0].startswith("start whatever") and calls[1] == "stop"


# -- plugin kinds ----------------------------------------------------------------------------


def test_registered_kind_runs_with_context(tmp_path: Path, git_repo: Repo) -> None:
    seen: dict[str, Any] = {}

    def my_kind(ctx: BenchmarkContext) -> list[ResultRecord | FailureRecord]:
        seen["checkout"] = ctx.checkout
        seen["sha"] = ctx.sha
        ctx.report_context({"asked": dict(ctx.params)})
        if ctx.params.get("fail"):
            raise BenchmarkFailure("wrong_result", "output did not match the reference")
        if ctx.params.get("explode"):
            raise RuntimeError("kaboom")
        if ctx.params.get("oom"):
            raise MemoryError()
        ctx.report_context({"reference": "bare loop"})
        return [ctx.result("bus_bw_gbps", 12.5, "GB/s", "higher", stats={"p50": 12.4})]

    register_kind("unit-test-kind", my_kind)
    try:
        s = suite_from(
            """
            name = "plugins"
            [[benchmark]]
            name = "good"
            kind = "unit-test-kind"
            params = { size = 1024 }
            [[benchmark]]
            name = "wrong"
            kind = "unit-test-kind"
            params = { fail = true }
            [[benchmark]]
            name = "explodes"
            kind = "unit-test-kind"
            params = { explode = true }
            [[benchmark]]
            name = "oom"
            kind = "unit-test-kind"
            params = { oom = true }
            """,
            tmp_path,
        )
        out = run_suite(s, tmp_path / "work", git_repo.shas[0], repo_url=git_repo.url)
    finally:
        suite_mod.BENCHMARK_KINDS.pop("unit-test-kind", None)
    assert [(r.benchmark, r.metric, r.value, r.params) for r in out.results] == [
        ("good", "bus_bw_gbps", 12.5, {"size": 1024})
    ]
    assert [(f.benchmark, f.failure_class) for f in out.failures] == [
        ("wrong", "wrong_result"),
        ("explodes", "crash"),
        ("oom", "oom"),
    ]
    assert "RuntimeError: kaboom" in out.failures[1].message
    assert "Traceback" in (out.failures[1].log_excerpt or "")
    # what a kind reports goes to the batch's context by kind and benchmark; one that raised
    # a failure posts no numbers, and no context about them
    assert out.context == {"unit-test-kind": {"good": {"asked": {"size": 1024}, "reference": "bare loop"}}}
    assert seen["sha"] == git_repo.shas[0] and (seen["checkout"] / "bench.py").exists()


def test_lazy_kind_module_and_unavailable_kind(
    tmp_path: Path, git_repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(suite_mod.KIND_MODULES, "lazy-kind", "tests.runners.agent.lazy_kind_plugin")
    monkeypatch.setitem(suite_mod.KIND_MODULES, "missing-kind", "bench_runner.no_such_module_here")
    monkeypatch.delitem(suite_mod.BENCHMARK_KINDS, "lazy-kind", raising=False)
    try:
        s = suite_from(
            """
            name = "lazy"
            [[benchmark]]
            name = "l"
            kind = "lazy-kind"
            [[benchmark]]
            name = "m"
            kind = "missing-kind"
            """,
            tmp_path,
        )
        out = run_suite(s, tmp_path / "work", git_repo.shas[0], repo_url=git_repo.url)
    finally:
        suite_mod.BENCHMARK_KINDS.pop("lazy-kind", None)
    assert [(r.benchmark, r.metric) for r in out.results] == [("l", "lazy_metric")]
    assert [(f.benchmark, f.failure_class) for f in out.failures] == [("m", "setup")]
    assert "unavailable" in out.failures[0].message


def test_cancel_stops_the_running_benchmark(tmp_path: Path, git_repo: Repo) -> None:
    pidfile = tmp_path / "pid"
    s = suite_from(
        f"""
        name = "cancel"
        [[benchmark]]
        name = "long"
        kind = "command"
        command = ["{PY}", "bench.py", "sleep", "{pidfile}"]
        timeout = 60
        [[benchmark]]
        name = "never"
        kind = "command"
        command = "{PY} bench.py ok"
        """,
        tmp_path,
    )
    cancel = threading.Event()

    def cancel_when_running() -> None:
        _wait_file(pidfile)
        cancel.set()

    threading.Thread(target=cancel_when_running, daemon=True).start()
    started = time.monotonic()
    out = run_suite(s, tmp_path / "work", git_repo.shas[0], repo_url=git_repo.url, cancel=cancel)
    assert time.monotonic() - started < 30
    assert out.cancelled and not out.ok
    assert out.results == [] and out.failures == []


def _wait_file(path: Path) -> None:
    deadline = time.monotonic() + 20
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_existing_checkout_is_used_in_place(tmp_path: Path, git_repo: Repo) -> None:
    s = suite_from(
        f"""
        name = "ci"
        [build]
        commands = ["echo ci > build.txt"]
        [[benchmark]]
        name = "gen"
        kind = "command"
        command = "{PY} bench.py ok"
        """,
        tmp_path,
    )
    out = run_suite(s, tmp_path / "work", git_repo.shas[1], source_dir=git_repo.path)
    assert out.ok, out.log
    assert (git_repo.path / "build.txt").read_text().strip() == "ci"
    assert not (tmp_path / "work" / "repos").exists()


def test_existing_checkout_at_another_commit_is_switched_not_clobbered(
    tmp_path: Path, git_repo: Repo
) -> None:
    s = suite_from(
        f"""
        name = "ci"
        [build]
        commands = ["echo ci > build.txt"]
        [[benchmark]]
        name = "gen"
        kind = "command"
        command = "{PY} bench.py ok"
        """,
        tmp_path,
    )
    (git_repo.path / "notes.txt").write_text("mine\n")  # untracked work of the owner of the checkout
    out = run_suite(s, tmp_path / "work", git_repo.shas[0], source_dir=git_repo.path)
    assert out.ok, out.log
    assert (git_repo.path / "notes.txt").read_text() == "mine\n"
    assert out.commit["sha"] == git_repo.shas[0]

    # an untracked README that the target commit would overwrite: git refuses, nothing is lost
    (git_repo.path / "README").write_text("my draft\n")
    out = run_suite(s, tmp_path / "work", git_repo.shas[1], source_dir=git_repo.path)
    assert [f.failure_class for f in out.failures] == ["setup"]
    assert "would be overwritten" in out.failures[0].message
    assert (git_repo.path / "README").read_text() == "my draft\n"
