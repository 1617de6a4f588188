"""HTTP calls to bench-server's /api/v1 (httpx, retries by tenacity).

Connection errors and 5xx answers (the server restarting) are retried with exponential backoff
and jitter, re-sending the very same request; any other answer goes back to the caller. The
policy is the runner client's (`bench_runner.client.retry_policy`), written again here because
bench-ci is installed on its own in GitHub Actions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import tenacity


class BenchApiError(RuntimeError):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _server_error(response: httpx.Response) -> bool:
    return response.status_code >= 500


def _last_outcome(state: tenacity.RetryCallState) -> Any:
    """Out of attempts: the last answer (a 5xx), or the last connection error raised again."""
    assert state.outcome is not None  # tenacity calls back only after an attempt
    return state.outcome.result()


def retry_policy(
    attempts: int, backoff: float, max_backoff: float, sleep: Callable[[float], None] = time.sleep
) -> tenacity.Retrying:
    """Up to `attempts` tries while the connection fails or the server answers 5xx, waiting
    `backoff` x 2^n (at most `max_backoff`) plus up to `backoff` of jitter between them."""
    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_exponential(multiplier=backoff, max=max_backoff)
        + tenacity.wait_random(0, backoff),
        retry=tenacity.retry_if_exception_type(httpx.TransportError)
        | tenacity.retry_if_result(_server_error),
        retry_error_callback=_last_outcome,
        sleep=sleep,
    )


class BenchApi:
    def __init__(
        self,
        server: str,
        token: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        *,
        backoff: float = 1.0,
        max_backoff: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        base = server.rstrip("/")
        self.base = base if base.endswith("/api/v1") else base + "/api/v1"
        headers = {"User-Agent": "bench-ci/0.1"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(base_url=self.base, headers=headers, timeout=timeout)
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> BenchApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """Retries connection errors and 5xx; raises BenchApiError when they last. A 4xx is returned."""
        request = self.http.build_request(
            method, path, **kw
        )  # built once: every attempt sends the same bytes
        attempts = self.retries + 1
        policy = retry_policy(attempts, self.backoff, self.max_backoff, self._sleep)
        where = f"{method} {self.base}{path}"
        try:
            resp: httpx.Response = policy(self.http.send, request)
        except httpx.TransportError as exc:
            raise BenchApiError(f"{where}: {type(exc).__name__}: {exc} (after {attempts} attempts)") from exc
        if resp.status_code >= 500:
            raise BenchApiError(
                f"{where}: HTTP {resp.status_code}: {resp.text[:200]} (after {attempts} attempts)",
                resp.status_code,
            )
        return resp

    @staticmethod
    def _ok(resp: httpx.Response, *codes: int) -> Any:
        if resp.status_code not in codes:
            try:
                body = resp.json()
                detail = f"{body.get('error')}: {body.get('detail')}"
            except ValueError:
                detail = resp.text[:300]
            raise BenchApiError(
                f"{resp.request.method} {resp.request.url} -> {resp.status_code} {detail}", resp.status_code
            )
        return resp.json() if resp.content else None

    def trigger(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self._ok(self.request("POST", "/runs", json=body), 200, 202))

    def run(self, run_id: int) -> dict[str, Any]:
        return dict(self._ok(self.request("GET", f"/runs/{run_id}"), 200))

    def commit(self, project: str, sha: str, baseline: str | None = None) -> dict[str, Any] | None:
        params = {"project": project} | ({"baseline": baseline} if baseline else {})
        resp = self.request("GET", f"/commits/{sha}", params=params)
        if resp.status_code == 404:
            return None
        return dict(self._ok(resp, 200))
