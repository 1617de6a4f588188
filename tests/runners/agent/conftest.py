from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .fakeserver import FakeServer

# A benchmark script the target repository ships: `python bench.py MODE`.
BENCH_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    mode = sys.argv[1]
    out = os.environ.get("BENCH_RESULTS_FILE")
    if mode == "ok":
        with open("build.txt") as f:
            built = f.read().strip()
        value = float(sys.argv[2]) if len(sys.argv) > 2 else 42.5
        json.dump({"results": [
            {"metric": "tokens_per_s", "value": value, "unit": "tok/s", "direction": "higher",
             "samples": [value - 1, value + 1], "stats": {"mean": value}},
            {"metric": "ttft_ms", "value": 12.0, "unit": "ms", "direction": "lower"},
        ], "failures": []}, open(out, "w"))
        print("built:", built)
    elif mode == "crash":
        print("segfault-ish: boom", flush=True)
        sys.exit(3)
    elif mode == "oom":
        print("torch.OutOfMemoryError: CUDA out of memory", flush=True)
        sys.exit(1)
    elif mode == "sleep":
        with open(sys.argv[2], "w") as f:
            f.write(str(os.getpid()))
        print("sleeping", flush=True)
        time.sleep(120)
    elif mode == "nofile":
        print("forgot to write results")
    elif mode == "garbage":
        open(out, "w").write("{not json")
    elif mode == "baddirection":
        json.dump({"results": [{"metric": "x", "value": 1, "unit": "s", "direction": "up"}]}, open(out, "w"))
    elif mode == "size":
        size = os.path.getsize(sys.argv[2]) if os.path.exists(sys.argv[2]) else 0
        json.dump({"results": [{"metric": "size", "value": size, "unit": "B", "direction": "lower"}]},
                  open(out, "w"))
    elif mode == "port":
        port = int(os.environ["BENCH_ENGINE_PORT"])
        json.dump({"results": [{"metric": "port", "value": port, "unit": "", "direction": "higher"}]},
                  open(out, "w"))
    elif mode == "engine":
        import urllib.request
        body = urllib.request.urlopen(os.environ["BENCH_ENGINE_URL"] + "/", timeout=5).read()
        json.dump({"results": [{"metric": "engine_bytes", "value": len(body), "unit": "B",
                                "direction": "higher"}]}, open(out, "w"))
    """
)

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Bench Test",
    "GIT_AUTHOR_EMAIL": "bench@example.org",
    "GIT_COMMITTER_NAME": "Bench Test",
    "GIT_COMMITTER_EMAIL": "bench@example.org",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


@dataclass
class Repo:
    path: Path
    shas: list[str]

    @property
    def url(self) -> str:
        return str(self.path)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True, env={**os.environ, **GIT_ENV}
    ).stdout.strip()


@pytest.fixture
def git_repo(tmp_path: Path) -> Repo:
    """A target repository with two commits."""
    repo = tmp_path / "target"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "bench.py").write_text(BENCH_SCRIPT)
    git(repo, "add", "bench.py")
    git(repo, "commit", "-q", "-m", "first")
    first = git(repo, "rev-parse", "HEAD")
    (repo / "README").write_text("second\n")
    git(repo, "add", "README")
    git(repo, "commit", "-q", "-m", "second commit\n\nwith a body")
    return Repo(repo, [first, git(repo, "rev-parse", "HEAD")])


@pytest.fixture
def server() -> Iterator[FakeServer]:
    srv = FakeServer().start()
    yield srv
    srv.stop()


PY = sys.executable


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in GIT_ENV.items():
        monkeypatch.setenv(k, v)
