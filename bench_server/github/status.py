"""Commit statuses on GitHub: `POST {api}/repos/{owner}/{repo}/statuses/{sha}`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

from bench_server import __version__
from bench_server.kit.errors import TransientError
from bench_server.kit.settings import Settings

log = logging.getLogger(__name__)

# job state -> (GitHub state, description)
STATES = {
    "queued": ("pending", "queued"),
    "claimed": ("pending", "claimed by a runner"),
    "running": ("pending", "running"),
    "succeeded": ("success", "benchmarks ran"),
    "failed": ("failure", "failed"),
    "timed_out": ("failure", "timed out"),
    "cancelled": ("error", "cancelled"),
}


@dataclass(frozen=True)
class CommitStatus:
    repo: str
    sha: str
    state: str
    context: str
    description: str
    target_url: str | None = None

    def body(self) -> dict[str, Any]:
        body = {"state": self.state, "context": self.context, "description": self.description[:140]}
        if self.target_url:
            body["target_url"] = self.target_url
        return body


def post_commit_status(settings: Settings, status: CommitStatus, client: httpx.Client | None = None) -> int:
    """POST once. 2xx: done; 5xx, 429, timeouts and connection errors: TransientError (the task
    retries with backoff); other 4xx: logged and dropped (retrying cannot fix them)."""
    url = f"{settings.github_api_url.rstrip('/')}/repos/{status.repo}/statuses/{status.sha}"
    headers = {
        "Authorization": f"Bearer {settings.github_token.get_secret_value()}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "User-Agent": f"bench-server/{__version__}",
    }
    own = client is None
    http = client or httpx.Client(timeout=settings.github_timeout_s)
    try:
        resp = http.post(url, json=status.body(), headers=headers)
    except httpx.TransportError as exc:  # timeouts, refused connections, resets
        raise TransientError(f"POST {url}: {type(exc).__name__}: {exc}") from exc
    finally:
        if own:
            http.close()
    if resp.status_code >= 500 or resp.status_code == 429:
        raise TransientError(f"POST {url}: HTTP {resp.status_code}")
    if resp.status_code >= 400:
        log.error(
            "GitHub refused the status for %s@%s: HTTP %s %s",
            status.repo,
            status.sha,
            resp.status_code,
            resp.text[:300],
        )
    return resp.status_code
