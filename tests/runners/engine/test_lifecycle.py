"""Engine lifecycle: start, health wait, log capture, stop, and failure classes.

The "engines" here are small real processes (Python one-liners and the stdlib HTTP server)
that behave the way a failing engine does.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
from bench_runner.engine import EngineFailure, EngineProcess, classify_exit, free_port, looks_like_oom
from bench_runner.serving.client import RequestSpec
from bench_runner.serving.loadgen import BenchConfig, arun_benchmark

PY = sys.executable


def http_server_code(port: int, before: str = "", after: str = "") -> str:
    """A health endpoint on ``port`` (200 on every GET), with code to run before and after."""
    lines = [
        "import http.server, os, signal, sys, threading, time",
        before,
        "class H(http.server.BaseHTTPRequestHandler):",
        "    def do_GET(self):",
        "        self.send_response(200); self.send_header('Content-Length', '2'); self.end_headers()",
        "        self.wfile.write(b'ok')",
        "    def log_message(self, *a):",
        "        pass",
        f"srv = http.server.ThreadingHTTPServer(('127.0.0.1', {port}), H)",
        "threading.Thread(target=srv.serve_forever, daemon=True).start()",
        "print('listening', flush=True)",
        after,
        "while True:",
        "    time.sleep(0.1)",
    ]
    return "\n".join(lines)


def engine(tmp_path: Path, code: str, port: int, stop_grace: float = 10.0) -> EngineProcess:
    return EngineProcess(
        [PY, "-c", code],
        health_url=f"http://127.0.0.1:{port}/health",
        log_path=tmp_path / "engine.log",
        stop_grace=stop_grace,
    )


def test_exit_immediately_is_engine_start(tmp_path: Path) -> None:
    port = free_port()
    eng = engine(tmp_path, "import sys; print('model file not found: /x.gguf'); sys.exit(3)", port)
    eng.start()
    with pytest.raises(EngineFailure) as info:
        eng.wait_healthy(timeout=20)
    assert info.value.failure_class == "engine_start"
    assert info.value.returncode == 3
    assert "model file not found" in (info.value.log_excerpt or "")
    assert "model file not found" in (tmp_path / "engine.log").read_text()
    rec = info.value.to_record("serving", "b", {"isl": 1})
    assert rec.failure_class == "engine_start" and rec.log_excerpt and rec.params == {"isl": 1}
    eng.stop()


def test_missing_binary_is_engine_start(tmp_path: Path) -> None:
    eng = EngineProcess(
        ["/nonexistent/engine-binary"], health_url="http://127.0.0.1:9/", log_path=tmp_path / "e.log"
    )
    with pytest.raises(EngineFailure) as info:
        eng.start()
    assert info.value.failure_class == "engine_start"


def test_never_healthy_is_timeout_and_process_is_stopped(tmp_path: Path) -> None:
    port = free_port()
    eng = engine(tmp_path, "import time\nprint('loading', flush=True)\ntime.sleep(120)", port, stop_grace=2)
    eng.start()
    t0 = time.monotonic()
    with pytest.raises(EngineFailure) as info:
        eng.wait_healthy(timeout=1.5)
    assert info.value.failure_class == "timeout"
    assert 1.4 <= time.monotonic() - t0 < 10
    assert eng.poll() is not None  # it was stopped, not left running
    assert "loading" in (info.value.log_excerpt or "")


def test_oom_log_and_exit_137_is_oom(tmp_path: Path) -> None:
    port = free_port()
    code = (
        "import sys\n"
        "print('ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer', flush=True)\n"
        "sys.exit(137)"
    )
    eng = engine(tmp_path, code, port)
    eng.start()
    with pytest.raises(EngineFailure) as info:
        eng.wait_healthy(timeout=20)
    assert info.value.failure_class == "oom"
    assert info.value.returncode == 137


def test_sigkill_from_outside_during_run_is_oom(tmp_path: Path) -> None:
    port = free_port()
    # Healthy, then SIGKILLed the way the kernel's OOM killer does it (no log line at all).
    code = http_server_code(port, after="time.sleep(1.0); os.kill(os.getpid(), signal.SIGKILL)")
    with engine(tmp_path, code, port) as eng:
        eng.check()  # alive and healthy
        deadline = time.monotonic() + 20
        while eng.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(EngineFailure) as info:
            eng.check()
    assert info.value.failure_class == "oom"
    assert info.value.returncode == -signal.SIGKILL


def test_death_during_run_is_crash(tmp_path: Path) -> None:
    port = free_port()
    code = http_server_code(
        port, after="time.sleep(1.0); print('Segmentation fault', flush=True); os._exit(139)"
    )
    with engine(tmp_path, code, port) as eng:
        deadline = time.monotonic() + 20
        while eng.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(EngineFailure) as info:
            eng.check()
    assert info.value.failure_class == "crash"
    assert "Segmentation fault" in (info.value.log_excerpt or "")


def test_clean_stop_with_sigterm(tmp_path: Path) -> None:
    port = free_port()
    with engine(tmp_path, http_server_code(port), port, stop_grace=5) as eng:
        assert eng.healthy_after is not None and eng.healthy_after < 20
        pid = eng.pid
        assert pid is not None
    result = eng.stop()  # already stopped by the context manager: idempotent
    assert result.returncode == -signal.SIGTERM
    assert not result.killed
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert "listening" in (tmp_path / "engine.log").read_text()


def test_sigterm_ignored_gets_sigkill_for_whole_group(tmp_path: Path) -> None:
    port = free_port()
    child_pid_file = tmp_path / "child.pid"
    # The engine ignores SIGTERM and has a child (a worker) that ignores it too.
    before = (
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "import subprocess\n"
        "child = subprocess.Popen([sys.executable, '-c', "
        "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)'])\n"
        f"open({str(child_pid_file)!r}, 'w').write(str(child.pid))"
    )
    eng = engine(tmp_path, http_server_code(port, before=before), port, stop_grace=1.0)
    eng.start()
    eng.wait_healthy(timeout=20)
    child_pid = int(child_pid_file.read_text())
    result = eng.stop()
    assert result.killed
    assert result.returncode == -signal.SIGKILL
    assert result.seconds >= 1.0
    # The worker in the same process group is gone too (reaped by init or a zombie at most).
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(child_pid):
        time.sleep(0.05)
    assert not _alive(child_pid)
    # Our own SIGKILL after the grace period is not mistaken for the OOM killer.
    eng.check()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except FileNotFoundError:
        return False


def test_classify_rules() -> None:
    assert classify_exit(1, "CUDA error: out of memory", phase="run") == "oom"
    assert classify_exit(-9, "", phase="run") == "oom"
    assert classify_exit(-9, "", phase="run", we_killed=True) == "crash"
    assert classify_exit(1, "ValueError: bad flag", phase="start") == "engine_start"
    assert classify_exit(-11, "", phase="run") == "crash"
    assert looks_like_oom(137, "")
    assert not looks_like_oom(0, "all good, 12 MiB buffer allocated")


async def test_engine_crash_during_benchmark_stops_the_run(tmp_path: Path) -> None:
    """A serving run against an engine that dies mid-run ends with the engine's failure class."""
    port = free_port()
    cmd = [PY, "-m", "bench_runner.serving.scripted_server", "--port", str(port)]
    eng = EngineProcess(cmd, health_url=f"http://127.0.0.1:{port}/health", log_path=tmp_path / "s.log")
    eng.start()
    eng.wait_healthy(timeout=20)
    specs = [RequestSpec("p", 4, 50, {"scripted": {"ttft_ms": 10, "itl_ms": 20}}) for _ in range(20)]
    cfg = BenchConfig(
        base_url=f"http://127.0.0.1:{port}",
        num_requests=20,
        concurrency=2,
        progress=False,
        use_server_tokenizer=False,
        warmup_requests=0,
    )

    async def kill_soon() -> None:
        import asyncio

        await asyncio.sleep(0.5)
        assert eng.pid is not None
        os.kill(eng.pid, signal.SIGSEGV)

    import asyncio

    killer = asyncio.create_task(kill_soon())
    t0 = time.monotonic()
    with pytest.raises(EngineFailure) as info:
        await arun_benchmark(cfg, engine=eng, requests=specs)
    await killer
    assert info.value.failure_class == "crash"
    assert time.monotonic() - t0 < 5  # stopped early, not after all 20 x 1 s requests
    eng.stop()
