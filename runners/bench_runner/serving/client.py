"""Streaming client for OpenAI-compatible ``/v1/completions`` and ``/v1/chat/completions``.

Timing follows vLLM's ``bench serve`` (``vllm/benchmarks/lib/endpoint_request_func.py``; see
shared/METRICS.md and docs/metrics.md):

* ``start`` is ``time.perf_counter()`` when the client issues the request, before the body is
  encoded and handed to httpx, as vLLM takes its start time before ``session.post``. TTFT and
  E2EL count from there, so the client's own work is inside them as it is inside vLLM's.
  ``wire_start`` is when the request bytes are handed to the socket, reported through httpx's
  ``trace`` extension (``http11.send_request_headers.started``: with ``StampedTransport``, used
  for ``http://`` by ``make_client``, just before its one write of head and body). The
  difference is ``client_queue``: time spent inside this client (encoding, connection pool,
  opening a connection when none is idle) before the request reached the socket, reported as a
  metric of its own so that a busy client is visible instead of hidden in TTFT;
* every network read is timestamped on arrival, and every SSE event completed by that read shares
  it. With ``StampedTransport`` the stamp is taken in the socket protocol's ``data_received``, so
  queueing in the consuming coroutine does not delay it; with the default transport it is taken
  when the body bytes reach this code;
* the chunk rule (vLLM's, for both endpoints): every SSE data message whose ``choices`` list is
  non-empty is one chunk, whatever its text. A chat role-only first delta, a chunk with empty
  text (a special token) and a last chunk that carries only ``finish_reason`` are all chunks.
  TTFT = first chunk - start; every later chunk adds one ITL gap, the time since the previous
  chunk; E2EL = last chunk - start. Messages without choices (the usage summary that
  ``stream_options.include_usage`` adds, an error object), ``[DONE]`` and SSE comments are not
  chunks: they add no gap and do not move the end of E2EL. ``chunk_times`` holds the chunks;
* kept beside it for tools that skip empty chunks (SGLang, AIPerf): ``first_nonempty_time``, the
  first chunk with text, and ``content_times``, the first chunk followed by the chunks with text;
  ``event_times`` holds every data message, usage and ``[DONE]`` included;
* a request succeeds when the server answered 200, at least one chunk arrived, the stream ended
  cleanly and carried no error object (vLLM requires only the first two);
* output tokens come from ``usage.completion_tokens`` when the server streams usage; otherwise
  they are counted later with a tokenizer (see ``workload``), or as a last resort from the
  number of chunks with text. ``output_tokens_source`` records which.
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
# Trace events that mark the request bytes going to the socket (httpcore's and StampedTransport's
# names). Connecting comes before them, so a new connection's setup counts as client queueing.
_WIRE_START_EVENTS = frozenset({"http11.send_request_headers.started", "http2.send_request_headers.started"})


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
    """What the client saw for one request. Times are absolute ``perf_counter`` seconds.

    The derived values (``ttft``, ``itl``, ``e2el``, ``tpot``, ``client_queue``,
    ``output_shortfall``) mean something only for a successful request; result arrays and
    aggregates take them from successful requests alone.
    """

    index: int
    input_len: int
    max_tokens: int
    warmup: bool = False
    start: float = 0.0  # the client issues the request (vLLM's start time)
    wire_start: float | None = None  # the request bytes are handed to the socket
    scheduled: float | None = None  # open loop: planned dispatch time
    ttft_time: float | None = None  # first chunk
    first_nonempty_time: float | None = None  # first chunk with text (SGLang / AIPerf TTFT)
    chunk_times: list[float] = field(default_factory=list)  # every message with choices (vLLM)
    content_times: list[float] = field(default_factory=list)  # first chunk + chunks with text
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
        """Seconds from start to the first chunk (0 when none arrived: a failed request)."""
        return self.ttft_time - self.start if self.ttft_time is not None else 0.0

    @property
    def e2el(self) -> float:
        """Seconds from start to the last chunk (0 when none arrived)."""
        return self.chunk_times[-1] - self.start if self.chunk_times else 0.0

    @property
    def itl(self) -> list[float]:
        """Gaps between consecutive chunks, in seconds."""
        ts = self.chunk_times
        return [b - a for a, b in zip(ts, ts[1:], strict=False)]

    @property
    def tpot(self) -> float | None:
        """(E2EL - TTFT) / (output tokens - 1); None for one output token or fewer."""
        if self.output_tokens <= 1:
            return None
        return (self.e2el - self.ttft) / (self.output_tokens - 1)

    @property
    def client_queue(self) -> float | None:
        """Seconds from start until the request bytes were handed to the socket."""
        return None if self.wire_start is None else self.wire_start - self.start

    @property
    def output_shortfall(self) -> int | None:
        """Output tokens short of ``max_tokens``; None for a failed request.

        ``finish_reason == "length"`` is the server saying it generated ``max_tokens``: then an
        estimated count (re-tokenised text, which can differ by a token or two) is not held
        against it, a count from ``usage`` is. A request the server stopped for another reason
        (end of sequence, a stop string) is at least one token short.
        """
        if not self.success:
            return None
        missing = max(0, self.max_tokens - self.output_tokens)
        if self.finish_reason == "length":
            return missing if self.output_tokens_source == "usage" else 0
        if self.finish_reason is None:
            return missing
        return max(1, missing)


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
    """A completion's ``text`` or a chat delta's content ("" for a role-only or finish chunk)."""
    text = choice.get("text")
    if text is None:
        delta = choice.get("delta") or {}
        text = delta.get("content") or delta.get("reasoning_content") or ""
    return text if isinstance(text, str) else ""


async def send_request(
    client: httpx.AsyncClient,
    url: str,
    payload: dict[str, Any],
    out: RequestOutput,
    counter: list[int] | None = None,
    headers: dict[str, str] | None = None,
) -> RequestOutput:
    """Send one streamed request and fill ``out``. Never raises for request-level failures.

    ``counter`` (a one-element list) is incremented per chunk with text so a progress reporter
    can show tokens/s while requests are in flight.
    """
    perf = time.perf_counter
    out.start = perf()  # before encoding, as vLLM's start precedes session.post's JSON encoding
    body = json.dumps(payload).encode()
    hdrs = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    if headers:
        hdrs.update(headers)
    splitter = SSESplitter()
    text_parts: list[str] = []
    chunk_times = out.chunk_times
    content_times = out.content_times
    event_times = out.event_times

    async def trace(event: str, info: dict[str, Any]) -> None:
        if out.wire_start is None and event in _WIRE_START_EVENTS:
            out.wire_start = perf()

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
                    if not isinstance(msg, dict):
                        raise ValueError(f"SSE data is not a JSON object: {data[:80]!r}")
                    choices = msg.get("choices")
                    if isinstance(choices, list) and choices:
                        # A chunk (vLLM's rule): counts for TTFT, ITL and E2EL even without text.
                        chunk_times.append(now)
                        choice = choices[0] if isinstance(choices[0], dict) else {}
                        text = _choice_text(choice)
                        if out.ttft_time is None:
                            out.ttft_time = now
                            content_times.append(now)
                        elif text:
                            content_times.append(now)
                        if text:
                            if out.first_nonempty_time is None:
                                out.first_nonempty_time = now
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
