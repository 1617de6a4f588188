"""Rate limits on the write endpoints and the GitHub webhook: a token bucket per client, checked
before the request body is read, answering 429 with `Retry-After` when the bucket is empty.

A client is its bearer token (hashed; a runner's or CI's token is its identity) or, without one,
its address; the webhook is always keyed by address (GitHub signs, it does not authenticate).
Buckets live in this process: with several API processes each enforces its own limit. At most
MAX_CLIENTS buckets are kept, the least recently used going first.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from bench_server.kit.errors import send_error

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_CLIENTS = 10_000


@dataclass(frozen=True)
class Limit:
    """`per_s` requests a second on average, `burst` at once; per_s <= 0 turns the limit off."""

    per_s: float
    burst: int

    @property
    def enabled(self) -> bool:
        return self.per_s > 0


class Buckets:
    def __init__(self, limit: Limit) -> None:
        self.limit = limit
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, key: str, now: float) -> float:
        """Take one request from the key's bucket: 0 if allowed, else seconds until one is."""
        capacity = float(max(1, self.limit.burst))
        tokens, at = self._buckets.pop(key, (capacity, now))
        tokens = min(capacity, tokens + (now - at) * self.limit.per_s)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.limit.per_s
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > MAX_CLIENTS:
            self._buckets.popitem(last=False)
        return wait


def _client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _bearer_key(scope: Scope) -> str | None:
    for name, value in scope.get("headers") or []:
        if name == b"authorization":
            return "t:" + hashlib.sha256(value).hexdigest()[:32]
    return None


class RateLimit:
    """Pure ASGI middleware (no body is read before the decision)."""

    def __init__(self, app: ASGIApp, writes: Limit, webhook: Limit, prefix: str, webhook_path: str) -> None:
        self.app = app
        self.prefix = prefix.rstrip("/") + "/"
        self.webhook_path = webhook_path
        self.writes = Buckets(writes)
        self.webhook = Buckets(webhook)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        wait = 0.0
        if scope["type"] == "http" and scope.get("method", "GET") not in SAFE_METHODS:
            path = scope.get("path", "")
            now = time.monotonic()
            if path == self.webhook_path:
                if self.webhook.limit.enabled:
                    wait = self.webhook.take("a:" + _client_address(scope), now)
            elif path.startswith(self.prefix) and self.writes.limit.enabled:
                key = _bearer_key(scope) or "a:" + _client_address(scope)
                wait = self.writes.take(key, now)
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        retry_after = str(max(1, math.ceil(wait)))
        detail = f"too many requests; retry in {retry_after} s"
        await send_error(send, 429, "rate_limited", detail, [(b"retry-after", retry_after.encode())])
