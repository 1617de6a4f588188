"""HTTP client for the runner <-> server contract (docs/api-contract.md), over httpx.

Connection errors and 5xx answers are retried with exponential backoff (plus jitter) by
tenacity, re-sending the very same request, so a batch re-sent after a lost answer keeps its
idempotency key; if the server is still unreachable, `ServerUnavailable` is raised (the caller
spools or waits). A 4xx answer raises a `ClientError` subclass carrying the server's
`{"error", "detail"}`, without a retry. bench_ci's client applies the same policy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import tenacity

from . import __version__

LOG_TAIL_BYTES = 64 * 1024


class ApiError(Exception):
    """Base of everything the client raises for a failed call."""


class ServerUnavailable(ApiError):
    """The server could not be reached, or kept answering 5xx, after the retries."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ClientError(ApiError):
    """A 4xx answer: the request is wrong and retrying it as is will not help."""

    def __init__(self, status: int, error: str, detail: Any, method: str = "", path: str = "") -> None:
        self.status = status
        self.error = error
        self.detail = detail
        self.method = method
        self.path = path
        super().__init__(f"{method} {path} -> {status} {error}: {detail}".strip())


class AuthError(ClientError):
    """401/403: missing, wrong or revoked token, or the token lacks the scope."""


class NotFound(ClientError):
    """404."""


class Conflict(ClientError):
    """409: lease lost, job cancelled, or idempotency key reused with another body."""


class Rejected(ClientError):
    """422 (or 400): the server refused the body as invalid."""


def _error_class(status: int) -> type[ClientError]:
    if status in (401, 403):
        return AuthError
    if status == 404:
        return NotFound
    if status == 409:
        return Conflict
    if status in (400, 422):
        return Rejected
    return ClientError


@dataclass
class Job:
    """A claimed job (see `POST /jobs/claim`)."""

    id: int
    project: dict[str, Any]
    commit: dict[str, Any]
    suite: str
    hardware_class: str
    attempt: int = 1
    lease_expires_at: str | None = None
    lease_seconds: float = 300.0
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        try:
            return cls(
                id=int(data["id"]),
                project=dict(data["project"]),
                commit=dict(data["commit"]),
                suite=str(data["suite"]),
                hardware_class=str(data.get("hardware_class", "")),
                attempt=int(data.get("attempt") or 1),
                lease_expires_at=data.get("lease_expires_at"),
                lease_seconds=float(data.get("lease_seconds") or 300.0),
                raw=data,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ApiError(f"malformed job from the server: {exc!r}: {data!r}") from exc

    @property
    def sha(self) -> str:
        return str(self.commit["sha"])


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


def api_base(url: str) -> str:
    """ "https://bench.example.org" -> "https://bench.example.org/api/v1"."""
    url = url.rstrip("/")
    return url if url.endswith("/api/v1") else url + "/api/v1"


def tail(text: str, limit: int = LOG_TAIL_BYTES) -> str:
    """The last `limit` bytes of `text` (UTF-8), starting on a line boundary when possible."""
    data = text.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return text
    cut = data[-limit:]
    newline = cut.find(b"\n")
    if 0 <= newline < len(cut) // 4:
        cut = cut[newline + 1 :]
    return "[... log truncated ...]\n" + cut.decode("utf-8", errors="ignore")


class BenchClient:
    """One runner's (or CI job's) connection to the server."""

    def __init__(
        self,
        server_url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 15.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = api_base(server_url)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        headers = {"User-Agent": f"bench-runner/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> BenchClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -----------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: str | bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> httpx.Response:
        """Send with retries on connection errors and 5xx; raise ClientError on 4xx."""
        # Built once, so every attempt sends the same bytes.
        request = self._http.build_request(
            method,
            path,
            json=json,
            content=content,
            headers=headers,
            params=params,
            timeout=self.timeout if timeout is None else timeout,
        )
        attempts = (self.retries if retries is None else retries) + 1
        policy = retry_policy(attempts, self.backoff, self.max_backoff, self._sleep)
        where = f"{method} {self.base_url}{path}"
        try:
            resp: httpx.Response = policy(self._http.send, request)
        except httpx.TransportError as exc:
            raise ServerUnavailable(
                f"{where}: {type(exc).__name__}: {exc} (after {attempts} attempts)"
            ) from exc
        if resp.status_code >= 500:
            raise ServerUnavailable(
                f"{where}: HTTP {resp.status_code}: {resp.text[:200]} (after {attempts} attempts)",
                resp.status_code,
            )
        if resp.status_code >= 400:
            raise self._client_error(resp, method, path)
        return resp

    @staticmethod
    def _client_error(resp: httpx.Response, method: str, path: str) -> ClientError:
        error, detail = f"http_{resp.status_code}", resp.text[:500]
        try:
            body = resp.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            error = str(body.get("error", error))
            detail = body.get("detail", detail)
        return _error_class(resp.status_code)(resp.status_code, error, detail, method, path)

    @staticmethod
    def _json(resp: httpx.Response) -> dict[str, Any]:
        if not resp.content:
            return {}
        body = resp.json()
        return body if isinstance(body, dict) else {"data": body}

    # -- the contract -------------------------------------------------------------------

    def register(
        self,
        name: str,
        hardware_class: str,
        labels: list[str] | None = None,
        fingerprint: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Exchange this client's registration token for `{"runner_id", "token"}`."""
        body = {
            "name": name,
            "hardware_class": hardware_class,
            "labels": labels or [],
            "fingerprint": fingerprint or {},
        }
        return self._json(self.request("POST", "/runners/register", json=body))

    def heartbeat(self) -> dict[str, Any]:
        """Tell the server this runner is alive; the job it holds is known from its lease."""
        return self._json(self.request("POST", "/runners/heartbeat", json={}, retries=1))

    def claim(self, wait: float = 30.0) -> Job | None:
        """Long-poll for a job: a Job, or None if the server had none within `wait` seconds."""
        resp = self.request("POST", "/jobs/claim", params={"wait": int(wait)}, timeout=wait + 15.0, retries=1)
        if resp.status_code == 204 or not resp.content:
            return None
        return Job.from_json(resp.json())

    def renew_lease(self, job_id: int) -> dict[str, Any]:
        """Extend the lease; raises Conflict if it was lost or the job was cancelled."""
        return self._json(self.request("POST", f"/jobs/{job_id}/lease", retries=2))

    def start(self, job_id: int) -> dict[str, Any]:
        return self._json(self.request("POST", f"/jobs/{job_id}/start"))

    def upload_log(self, job_id: int, text: str, limit: int = LOG_TAIL_BYTES) -> None:
        self.request(
            "PUT",
            f"/jobs/{job_id}/log",
            content=tail(text, limit).encode("utf-8"),
            headers={"Content-Type": "text/plain; charset=utf-8"},
        )

    def post_results(self, payload: dict[str, Any]) -> dict[str, Any]:
        """`POST /results`: 201 stored, 200 `duplicate: true` for a re-post of the same key."""
        return self._json(self.request("POST", "/results", json=payload))

    def finish(
        self, job_id: int, state: str, failure_class: str | None = None, message: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"state": state, "failure_class": failure_class, "message": message}
        return self._json(self.request("POST", f"/jobs/{job_id}/finish", json=body))

    def release(self, job_id: int) -> dict[str, Any]:
        return self._json(self.request("POST", f"/jobs/{job_id}/release"))
