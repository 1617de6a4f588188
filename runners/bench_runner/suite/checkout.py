"""The target repository at a commit: a cached clone per URL, or a checkout given in place."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from .registry import LogFn


class CheckoutError(Exception):
    """The target could not be checked out at the commit (clone, fetch or checkout failed)."""


def _git(args: list[str], cwd: Path | None, log: LogFn, timeout: float = 900.0) -> str:
    log(f"$ git {' '.join(args)}")
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CheckoutError(f"git {args[0]}: {exc}") from exc
    if proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip()
        for line in err.splitlines()[-10:]:
            log("  | " + line)
        raise CheckoutError(f"git {args[0]} failed ({proc.returncode}): {err[-500:]}")
    return proc.stdout


def _has_commit(repo: Path, sha: str) -> bool:
    try:
        _git(["cat-file", "-e", f"{sha}^{{commit}}"], repo, lambda _l: None)
        return True
    except CheckoutError:
        return False


def _repo_dirname(url: str) -> str:
    base = re.sub(r"\.git$", "", url.rstrip("/").rsplit("/", 1)[-1]) or "repo"
    return f"{re.sub(r'[^A-Za-z0-9._-]+', '-', base)}-{hashlib.sha256(url.encode()).hexdigest()[:10]}"


def checkout(
    repo_url: str | None, sha: str, cache_dir: Path, log: LogFn, *, source_dir: Path | None = None
) -> Path:
    """A working tree of the target at `sha`: the cached clone of `repo_url` under `cache_dir`
    (cloned once, fetched when the commit is missing; forced to a clean tree), or `source_dir`
    as it is when it is already at `sha` (a CI workspace), else checked out there without
    force or clean (git refuses rather than overwrite someone's local changes)."""
    if source_dir is not None:
        repo = source_dir.resolve()
        if not (repo / ".git").exists():
            log(f"{repo} is not a git checkout; using it as it is")
            return repo
    else:
        if not repo_url:
            raise CheckoutError(
                "no repository to check out (the job's project has no clone_url and the suite no repo)"
            )
        repo = cache_dir / _repo_dirname(repo_url)
        if not (repo / ".git").exists():
            if repo.exists():
                shutil.rmtree(repo)
            cache_dir.mkdir(parents=True, exist_ok=True)
            _git(["clone", "--no-checkout", repo_url, str(repo)], None, log)
    head = _git(["rev-parse", "HEAD"], repo, lambda _l: None).strip() if _has_commit(repo, "HEAD") else ""
    if head.startswith(sha.lower()) and source_dir is not None:
        return repo
    if not _has_commit(repo, sha):
        _git(["fetch", "--tags", "--force", "origin"], repo, log)
        if not _has_commit(repo, sha):
            _git(["fetch", "origin", sha], repo, log)
    if source_dir is not None:
        _git(["checkout", "--detach", sha], repo, log)
        return repo
    _git(["checkout", "--force", "--detach", sha], repo, log)
    _git(["clean", "-ffd"], repo, log)
    return repo


def commit_info(repo: Path, sha: str) -> dict[str, Any]:
    """sha, parents, author, message, committed_at of a commit (empty if it cannot be read)."""
    try:
        out = _git(["show", "-s", "--format=%H%x00%P%x00%an <%ae>%x00%cI%x00%B", sha], repo, lambda _l: None)
    except CheckoutError:
        return {}
    parts = out.split("\x00")
    if len(parts) < 5:
        return {}
    return {
        "sha": parts[0],
        "parents": parts[1].split(),
        "author": parts[2],
        "committed_at": parts[3],
        "message": parts[4].strip(),
    }
