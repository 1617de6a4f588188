"""The wheels as `pip install .` builds them (the Dockerfile's install): each carries only its own
packages, and installed into a fresh virtualenv, away from this checkout, the commands work and
`bench-server migrate` finds the migrations it ships."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from bench_server.models import Base

REPO = Path(__file__).resolve().parents[2]
PROJECTS = ["formats", ".", "runners", "ci"]  # the folders with a pyproject.toml
SOURCES = ["pyproject.toml", "bench_server", "web", "migrations", "formats", "runners", "ci"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def run(*cmd: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, f"{cmd}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Built from a copy, so the build leaves nothing in the checkout; bench_server/migrations
    stays a link, as in git."""
    root = tmp_path_factory.mktemp("packaging")
    src = root / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(REPO / name, src / name)
    out = root / "wheels"
    projects = [str(src / folder) for folder in PROJECTS]
    # The installed setuptools, no isolated build environment: fast and offline.
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out, *projects)
    return sorted(out.glob("*.whl"))


def _top_level(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        return {name.split("/")[0] for name in zf.namelist() if ".dist-info/" not in name}


def test_each_wheel_holds_only_its_own_packages(wheels: list[Path]) -> None:
    by_project = {w.name.split("-")[0]: _top_level(w) for w in wheels}
    assert by_project == {
        "bench_formats": {"bench_formats"},
        "bench_server": {"bench_server", "web"},
        "bench_runner": {"bench_runner"},
        "bench_ci": {"bench_ci"},
    }
    server = next(w for w in wheels if w.name.startswith("bench_server-"))
    with zipfile.ZipFile(server) as zf:
        shipped = {n.removeprefix("bench_server/migrations/") for n in zf.namelist() if "/migrations/" in n}
    in_repo = {str(p.relative_to(REPO / "migrations")) for p in (REPO / "migrations").rglob("*.py")}
    assert in_repo <= shipped and "script.py.mako" in shipped


def test_installed_wheels_migrate_and_start(wheels: list[Path], tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    # A plain virtualenv: it must not see this checkout or the editable installs of the test venv.
    run(sys.executable, "-m", "venv", venv)
    bin_dir = venv / "bin"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    # Dependencies come from pip's cache and index; no .pyc compilation (plotly alone has thousands).
    run(bin_dir / "python", "-m", "pip", "install", "-q", "--no-compile", "--disable-pip-version-check",
        *wheels, env=env)  # fmt: skip

    where = run(
        bin_dir / "python",
        "-c",
        "import bench_server, bench_runner, bench_formats, bench_ci; "
        "print(*(m.__file__ for m in (bench_server, bench_runner, bench_formats, bench_ci)))",
        env=env,
        cwd=tmp_path,
    )
    assert all(path.startswith(str(venv)) for path in where.split()), where

    db = tmp_path / "bench.db"
    run(
        bin_dir / "bench-server",
        "migrate",
        env={**env, "BENCH_DATABASE_URL": f"sqlite:///{db}"},
        cwd=tmp_path,
    )
    with sqlite3.connect(db) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert tables - {"alembic_version"} == set(Base.metadata.tables)
    assert version == ScriptDirectory(str(REPO / "migrations")).get_current_head()

    assert "migrate" in run(bin_dir / "bench-server", "--help", env=env, cwd=tmp_path)
    assert "import" in run(bin_dir / "bench-runner", "--help", env=env, cwd=tmp_path)
    assert "trigger" in run(bin_dir / "bench-ci", "--help", env=env, cwd=tmp_path)
