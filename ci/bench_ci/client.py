"""HTTP calls to bench-server's /api/v1 (stdlib + httpx)."""

from __future__ import annotations

import time
from typing import Any

import httpx


class BenchApiError(RuntimeError):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class BenchApi:
    def __init__(
        self, server: str, token: str | None = None, timeout: float = 30.0, retries: int = 3
    ) -> None:
        base = server.rstrip("/")
        self.base = base if base.endswith("/api/v1") else base + "/api/v1"
        headers = {"User-Agent": "bench-ci/0.1"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(base_url=self.base, headers=headers, timeout=timeout)
        self.retries = retries

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> BenchApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """Retries connection errors and 5xx (the server restarting); raises on other errors."""
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(10.0, 1.0 * 2 ** (attempt - 1)))
            try:
                resp = self.http.request(method, path, **kw)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if resp.status_code >= 500:
                last = f"HTTP {resp.status_code}: {resp.text[:200]}"
                continue
            return resp
        raise BenchApiError(f"{method} {self.base}{path}: {last}")

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
