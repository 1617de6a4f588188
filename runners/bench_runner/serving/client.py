"""Streaming client for OpenAI-compatible ``/v1/completions`` and ``/v1/chat/completions``.

Timing follows vLLM's ``bench serve`` (see shared/METRICS.md):

* ``start`` is ``time.perf_counter()`` just before the request goes on the wire, reported through
  httpx's ``trace`` extension: with ``StampedTransport`` (``transport.py``, used for ``http://``
  by ``make_client``) just before the request bytes are written to the socket; with httpx's
  default transport (httpcore) when it starts writing the request headers, or opening the TCP
  connection when a new one is needed. ``client_start``, stamped before handing the request to
  httpx, is kept too; the difference is the client's own queueing, which would otherwise inflate
  TTFT by up to a few ms per request when many requests start at once;
* every network read is timestamped on arrival, and every SSE event completed by that read shares
  it. With ``StampedTransport`` the stamp is taken in the socket protocol's ``data_received``, so
  queueing in the consuming coroutine does not delay it; with the default transport it is taken
  when the body bytes reach this code;
* TTFT is the first event that carries a non-empty ``choices`` list, even with empty text;
* "content chunks" are that first event plus every later event whose choice carries text
  (``text``, ``delta.content`` or ``delta.reasoning_content``). ITL is the gaps between them and
  E2EL ends at the last one. A trailing ``finish_reason`` event with no text is kept in the raw
  timestamps but is not a token, so it neither adds a ~0 ms ITL gap nor stretches E2EL.
* output tokens come from ``usage.completion_tokens`` when the server streams usage; otherwise
  they are counted later with a tokenizer (see ``workload``), or as a last resort from the
  number of content chunks. ``output_tokens_source`` records which.
"""

from __future__ import annotations

import json
import os
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from .sse import SSESplitter
from .transport import STAMPS_EXTENSION, StampedTransport

Endpoint = Literal["completions", "chat"]
TokenSource = Literal["usage", "tokenizer", "chunks", "none"]

ENDPOINT_PATHS: dict[str, str] = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}
# httpcore trace events that mark the request leaving the client (first one wins).
_WIRE_START_EVENTS = frozenset(
    {
        "connection.connect_tcp.started",
        "connection.connect_unix_socket.started",
        "http11.send_request_headers.started",
        "http2.send_request_headers.started",
    }
)


def stamped_transport_default() -> bool:
    """``StampedTransport`` unless ``BENCH_RUNNER_HTTP_TRANSPORT=httpx`` asks for httpx's own."""
    return os.environ.get("BENCH_RUNNER_HTTP_TRANSPORT", "stamped").strip().lower() != "httpx"


def make_client(
    *,
    timeout: httpx.Timeout,
    verify: ssl.SSLContext | bool = True,
    limits: httpx.Limits | None = None,
    stamped: bool | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for streaming requests.

    With ``stamped`` (default: ``stamped_transport_default()``), ``http://`` requests go through
    ``StampedTransport``, which timestamps body bytes as they arrive from the socket; other
    schemes use httpx's default transport built from ``verify`` and ``limits``. With
    ``stamped=False`` the client is plain httpx.
    """
    limits = limits or httpx.Limits(max_connections=1, max_keepalive_connections=1)
    if stamped is None:
        stamped = stamped_transport_default()
    if not stamped:
        return httpx.AsyncClient(limits=limits, timeout=timeout, verify=verify)
    return httpx.AsyncClient(
        transport=StampedTransport(verify=verify, limits=limits), timeout=timeout, verify=verify
    )


@dataclass
class RequestSpec:
    """One request of a workload."""

    prompt: str
    input_len: int
    max_tokens: int
    extra_body: dict[str, Any] = field(default_factory=dict)


@dataclass
class RequestOutput:
    """What the client saw for one request. Times are absolute ``perf_counter`` seconds."""

    index: int
    input_len: int
    max_tokens: int
    warmup: bool = False
    start: float = 0.0  # request goes on the wire
    client_start: float = 0.0  # request handed to httpx
    scheduled: float | None = None  # open loop: planned dispatch time
    ttft_time: float | None = None  # first event with choices
    first_nonempty_time: float | None = None  # first event with text (SGLang / AIPerf TTFT)
    content_times: list[float] = field(default_factory=list)  # TTFT event + text events
    event_times: list[float] = field(default_factory=list)  # every data event incl. usage/[DONE]
    end_time: float | None = None  # stream closed
    text: str = ""
    usage_completion_tokens: int | None = None
    usage_prompt_tokens: int | None = None
    output_tokens: int = 0
    output_tokens_source: TokenSource = "none"
    finish_reason: str | None = None
    status_code: int | None = None
    success: bool = False
    error: str = ""

    @property
    def ttft(self) -> float:
        """Seconds from start to the first ``choices`` event (0 when none arrived)."""
        return self.ttft_time - self.start if self.ttft_time is not None else 0.0

    @property
    def e2el(self) -> float:
        """Seconds from start to the last content chunk."""
        return self.content_times[-1] - self.start if self.content_times else 0.0

    @property
    def itl(self) -> list[float]:
        """Gaps between consecutive content chunks, in seconds."""
        ts = self.content_times
        return [b - a for a, b in zip(ts, ts[1:], strict=False)]

    @property
    def tpot(self) -> float | None:
        """(E2EL - TTFT) / (output tokens - 1); None for one output token or fewer."""
        if self.output_tokens <= 1:
            return None
        return (self.e2el - self.ttft) / (self.output_tokens - 1)


def build_payload(
    endpoint: Endpoint,
    model: str,
    spec: RequestSpec,
    *,
    temperature: float = 0.0,
    include_usage: bool = True,
) -> dict[str, Any]:
    """The JSON body for one streamed request."""
    body: dict[str, Any] = {"model": model, "stream": True, "max_tokens": spec.max_tokens}
    if endpoint == "chat":
        body["messages"] = [{"role": "user", "content": spec.prompt}]
    else:
        body["prompt"] = spec.prompt
    body["temperature"] = temperature
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    body.update(spec.extra_body)
    return body


def _choice_text(choice: dict[str, Any]) -> str:
    text = choice.get("text")
    if text is None:
        delta = choice.get("delta") or {}
        text = delta.get("content") or delta.get("reasoning_content") or ""
    return text


async def send_request(
    client: httpx.AsyncClient,
    url: str,
    payload: dict[str, Any],
    out: RequestOutput,
    counter: list[int] | None = None,
    headers: dict[str, str] | None = None,
) -> RequestOutput:
    """Send one streamed request and fill ``out``. Never raises for request-level failures.

    ``counter`` (a one-element list) is incremented per content chunk so a progress reporter
    can show tokens/s while requests are in flight.
    """
    body = json.dumps(payload).encode()
    hdrs = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    if headers:
        hdrs.update(headers)
    splitter = SSESplitter()
    text_parts: list[str] = []
    perf = time.perf_counter
    content_times = out.content_times
    event_times = out.event_times

    async def trace(event: str, info: dict[str, Any]) -> None:
        if event in _WIRE_START_EVENTS and not wire[0]:
            out.start = perf()
            wire[0] = True

    wire = [False]
    out.client_start = out.start = perf()
    try:
        async with client.stream(
            "POST", url, content=body, headers=hdrs, extensions={"trace": trace}
        ) as resp:
            out.status_code = resp.status_code
            if resp.status_code != 200:
                detail = (await resp.aread())[:500].decode(errors="replace")
                out.error = f"HTTP {resp.status_code}: {detail}"
                out.end_time = perf()
                return out
            # aiter_raw skips httpx's decoder and re-chunker; only needed for compressed bodies.
            identity = resp.headers.get("content-encoding", "identity") == "identity"
            chunks = resp.aiter_raw() if identity else resp.aiter_bytes()
            # StampedTransport: the arrival time of the socket read that delivered the piece just
            # yielded (httpx passes pieces through one for one; decoded output of a piece is
            # available only once that piece arrived, so the stamp holds for aiter_bytes too).
            stamps = resp.extensions.get(STAMPS_EXTENSION)
            async for raw in chunks:
                now = stamps.t if stamps is not None else perf()
                for data in splitter.feed(raw):
                    event_times.append(now)
                    if data == b"[DONE]":
                        continue
                    msg = json.loads(data)
                    choices = msg.get("choices")
                    if choices:
                        choice = choices[0]
                        text = _choice_text(choice)
                        if out.ttft_time is None:
                            out.ttft_time = now
                            content_times.append(now)
                            if text:
                                out.first_nonempty_time = now
                        elif text:
                            content_times.append(now)
                            if out.first_nonempty_time is None:
                                out.first_nonempty_time = now
                        if text:
                            text_parts.append(text)
                            if counter is not None:
                                counter[0] += 1
                        reason = choice.get("finish_reason")
                        if reason:
                            out.finish_reason = reason
                    elif "error" in msg:
                        err = msg["error"]
                        out.error = str(err.get("message", err) if isinstance(err, dict) else err)
                    usage = msg.get("usage")
                    if usage:
                        out.usage_completion_tokens = usage.get("completion_tokens")
                        out.usage_prompt_tokens = usage.get("prompt_tokens")
            out.end_time = perf()
    except (httpx.HTTPError, OSError, ValueError) as exc:  # ValueError: bad JSON in an event
        out.end_time = perf()
        out.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        out.text = "".join(text_parts)
        return out
    out.text = "".join(text_parts)
    if out.ttft_time is None:
        out.error = out.error or "stream ended without any choices event"
        return out
    if out.error:
        return out
    if out.usage_completion_tokens is not None:
        out.output_tokens = int(out.usage_completion_tokens)
        out.output_tokens_source = "usage"
    else:
        # Provisional: one token per text chunk. The runner replaces it with a tokenizer count
        # after the run when one is available (that keeps tokenizer calls off the hot path).
        out.output_tokens = len(text_parts)
        out.output_tokens_source = "chunks"
    out.success = True
    return out
