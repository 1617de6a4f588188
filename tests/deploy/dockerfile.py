"""A Dockerfile read without Docker: its stages and instructions, what its COPY lines take from
the build context (after .dockerignore), and the `pip install` lines of its RUNs."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tests.deploy.compose import REPO


@dataclass
class Instruction:
    keyword: str  # upper case
    args: str  # continuation lines joined, comment lines inside them dropped
    line: int


@dataclass
class Copy:
    sources: list[str]
    dest: str
    from_stage: str | None


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def copies(self) -> list[Copy]:
        return [parse_copy(i.args) for i in self.all("COPY")]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            values.update(parse_env(instruction.args))
        return values

    def workdir_at(self, index: int) -> PurePosixPath:
        """The WORKDIR in effect before instruction `index` (the base image's: /)."""
        workdir = PurePosixPath("/")
        for instruction in self.instructions[:index]:
            if instruction.keyword == "WORKDIR":
                workdir = workdir / instruction.args.strip()
        return workdir

    def exec_form(self, keyword: str) -> list[str] | None:
        found = self.all(keyword)
        if not found:
            return None
        value = json.loads(found[-1].args)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), found[-1]
        return value


def parse(path: Path) -> list[Stage]:
    stages: list[Stage] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue  # comments (also inside a continued instruction) and blank lines
        if not pending:
            start = number
        pending.append(line[:-1] if line.endswith("\\") else line)
        if line.endswith("\\"):
            continue
        keyword, _, args = " ".join(pending).strip().partition(" ")
        pending = []
        instruction = Instruction(keyword.upper(), args.strip(), start)
        if instruction.keyword == "FROM":
            parts = instruction.args.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        else:
            assert stages, f"{path}:{start}: {instruction.keyword} before FROM"
            stages[-1].instructions.append(instruction)
    assert not pending, f"{path}: ends inside a continued line"
    return stages


def parse_copy(args: str) -> Copy:
    words = shlex.split(args)
    flags = {}
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        flags[key] = value
    if args.lstrip().startswith("["):
        words = json.loads(args[args.index("[") :])
    assert len(words) >= 2, f"COPY needs a source and a destination: {args!r}"
    return Copy(words[:-1], words[-1], flags.get("from"))


def parse_env(args: str) -> dict[str, str]:
    words = shlex.split(args)
    if words and "=" not in words[0]:  # the legacy `ENV KEY value` form
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)


def pip_installs(run_args: str) -> list[list[str]]:
    """The argument lists of every `pip install` in a RUN's shell line."""
    installs = []
    for command in re.split(r"&&|\|\||;", run_args):
        words = shlex.split(command)
        for i, word in enumerate(words[:-1]):
            if (word == "pip" or word.endswith("/pip")) and words[i + 1] == "install":
                installs.append(words[i + 2 :])
    return installs


# pip install options that take a value (the value is not a requirement).
PIP_OPTIONS_WITH_VALUE = {"-i", "--index-url", "--extra-index-url", "-c", "--constraint", "-r", "-f"}


def requirements(install_args: list[str]) -> list[str]:
    """The requirements of one `pip install` (its options and their values left out)."""
    found, skip = [], False
    for word in install_args:
        if skip:
            skip = False
        elif word in PIP_OPTIONS_WITH_VALUE:
            skip = True
        elif not word.startswith("-"):
            found.append(word)
    return found


def is_local(requirement: str) -> bool:
    return requirement.startswith((".", "/"))


def local_folder(requirement: str) -> str:
    """`./runners[engine,torch]` -> `./runners`."""
    return requirement.split("[", 1)[0]


class DockerIgnore:
    """.dockerignore's rules: patterns relative to the context root (Go's filepath.Match, plus
    `**` for any number of folders), later lines win, `!` re-includes, and a folder that is
    excluded excludes what is inside it."""

    def __init__(self, path: Path) -> None:
        self.rules: list[tuple[bool, str]] = []
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            pattern = line.lstrip("!").strip().strip("/")
            self.rules.append((negated, pattern))

    @staticmethod
    def _matches(pattern: str, path: str) -> bool:
        regex, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        return re.fullmatch(regex, path) is not None

    def excluded(self, relative: str) -> bool:
        parts = PurePosixPath(relative).parts
        # a path is out if it, or a folder above it, is matched last by an excluding rule
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            verdict = None
            for negated, pattern in self.rules:
                if self._matches(pattern, prefix):
                    verdict = not negated
            if verdict:
                return True
        return False


def context_files(source: str, ignore: DockerIgnore) -> list[Path]:
    """The files of the build context (the repository) that `COPY source` takes."""
    root = REPO / source
    if root.is_file() or root.is_symlink():
        return [] if ignore.excluded(source) else [root]
    files = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(REPO).as_posix()
        if (path.is_file() or path.is_symlink()) and not ignore.excluded(relative):
            files.append(path)
    return files
