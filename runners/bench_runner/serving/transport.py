"""An httpx transport for plain ``http://`` that timestamps every socket read on arrival.

httpx's default stack (httpcore, h11, anyio) hands body bytes to the caller only when the
consuming coroutine asks for them, so a timestamp taken there includes every bit of queueing in
the client's event loop. ``StampedTransport`` speaks HTTP/1.1 itself over an ``asyncio.Protocol``:
``data_received`` takes ``time.perf_counter()`` the moment the event loop hands it the bytes of
a read, strips the response framing (chunked transfer-encoding, Content-Length or
read-until-close) and queues the body bytes of that read together with its stamp.

The response body reaches httpx as a ``StampedStream`` (an ``httpx.AsyncByteStream``) that yields
one piece per socket read, never merged or split; right before yielding a piece it sets its
``t`` attribute to that read's arrival time. httpx passes the pieces straight through
(``Response.aiter_raw``), so a consumer reads ``resp.extensions["arrival_stamps"].t`` after
receiving each piece and gets the arrival time of the read that delivered it. An SSE event split
across reads (chunked framing can cut it anywhere) is completed by its last piece, so it gets the
time of the read that delivered its final byte.

Scope: HTTP/1.1 over TCP, one request per connection at a time, idle keep-alive connections kept
per transport instance and reused; connect and read timeouts from httpx's ``timeout`` extension.
Other schemes (``https``) go to a default ``httpx.AsyncHTTPTransport``. The request start can be
observed with httpx's ``trace`` extension: ``http11.send_request_headers.started`` is reported
just before the request bytes are written to the socket (one write for head and body).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import httpx

STAMPS_EXTENSION = "arrival_stamps"

_perf = time.perf_counter
_MAX_HEAD = 64 * 1024
_MAX_IDLE = 4

# Response phases of a connection.
_IDLE, _HEAD, _BODY, _DONE = 0, 1, 2, 3
# Body framing.
_LENGTH, _CHUNKED, _UNTIL_CLOSE = 0, 1, 2
# Chunked-decoder states.
_SIZE, _DATA, _DATA_END, _TRAILER = 0, 1, 2, 3


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 client connection: parses the response as bytes arrive, stamping each read."""

    def __init__(self, key: tuple[str, int]) -> None:
        self.key = key
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = True
        self.phase = _IDLE
        self.head_only = False  # HEAD request: no body whatever the headers say
        self.hbuf = b""
        self.status = 0
        self.reason = b""
        self.version = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.framing = _LENGTH
        self.remaining = 0
        self.cstate = _SIZE
        self.cpend = b""
        # Body pieces as (arrival time, bytes), one per socket read that carried body bytes.
        self.pieces: deque[tuple[float, bytes]] = deque()
        self.error: Exception | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.last_rx = 0.0
        self.read_timeout: float | None = None
        self.wait_start = 0.0
        self.timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        t = _perf()
        self.last_rx = t
        phase = self.phase
        if phase == _BODY:
            self._body(data, t)
            self._wake()
        elif phase == _HEAD:
            self._head(data, t)
        else:  # bytes with no request outstanding (or after the body): not HTTP we can reuse
            self.reusable = False
            if phase == _IDLE:
                self.close()

    def eof_received(self) -> bool:
        return False  # let the transport close; connection_lost does the bookkeeping

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        if self.phase == _HEAD and self.error is None:
            if exc is not None:
                self.error = httpx.ReadError(f"connection lost before the response: {exc}")
            else:
                self.error = httpx.RemoteProtocolError("Server disconnected without sending a response.")
        elif self.phase == _BODY and self.error is None:
            if self.framing == _UNTIL_CLOSE and exc is None:
                self.phase = _DONE
            else:
                what = f": {exc}" if exc is not None else ""
                self.error = httpx.RemoteProtocolError(
                    f"peer closed connection without sending complete message body{what}"
                )
        self._cancel_timer()
        self._wake()

    # -- parsing ------------------------------------------------------------------------------
    def _fail(self, error: Exception) -> None:
        if self.error is None:
            self.error = error
        self.close()
        self._wake()

    def _head(self, data: bytes, t: float) -> None:
        buf = self.hbuf + data if self.hbuf else data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEAD:
                    self._fail(httpx.RemoteProtocolError("response head too large"))
                    return
                self.hbuf = buf
                return
            head, buf = buf[:end], buf[end + 4 :]
            try:
                informational = self._parse_head(head)
            except ValueError as exc:
                self._fail(httpx.RemoteProtocolError(f"malformed response head: {exc}"))
                return
            if not informational:
                break
        self.hbuf = b""
        self.phase = _BODY
        if self.framing == _LENGTH and self.remaining == 0:
            self.phase = _DONE
            if buf:
                self.reusable = False
        elif buf:
            self._body(buf, t)
        self._wake()

    def _body(self, data: bytes, t: float) -> None:
        if self.framing == _CHUNKED:
            self._chunked(data, t)
        elif self.framing == _LENGTH:
            self._length(data, t)
        else:
            self.pieces.append((t, data))

    def _parse_head(self, head: bytes) -> bool:
        """Parse a status line and headers; True for an interim (1xx) response to skip."""
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ValueError(f"bad status line {lines[0][:100]!r}")
        status = int(parts[1])
        if not 100 <= status <= 999:
            raise ValueError(f"bad status code {status}")
        headers: list[tuple[bytes, bytes]] = []
        length: int | None = None
        chunked = False
        conn_tokens: list[bytes] = []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            name = name.strip()
            if not sep or not name:
                raise ValueError(f"bad header line {line[:100]!r}")
            value = value.strip()
            headers.append((name, value))
            lname = name.lower()
            if lname == b"content-length":
                length = int(value)
                if length < 0:
                    raise ValueError("negative Content-Length")
            elif lname == b"transfer-encoding":
                chunked = value.lower().rsplit(b",", 1)[-1].strip() == b"chunked"
            elif lname == b"connection":
                conn_tokens += [tok.strip().lower() for tok in value.split(b",")]
        if 100 <= status < 200 and status != 101:
            return True
        self.version, self.status = parts[0], status
        self.reason = parts[2] if len(parts) > 2 else b""
        self.headers = headers
        if b"close" in conn_tokens or (self.version == b"HTTP/1.0" and b"keep-alive" not in conn_tokens):
            self.reusable = False
        if self.head_only or status in (204, 304):
            self.framing, self.remaining = _LENGTH, 0
        elif chunked:
            self.framing, self.cstate, self.cpend = _CHUNKED, _SIZE, b""
        elif length is not None:
            self.framing, self.remaining = _LENGTH, length
        else:
            self.framing = _UNTIL_CLOSE
            self.reusable = False
        return False

    def _length(self, data: bytes, t: float) -> None:
        n = len(data)
        if n >= self.remaining:
            if n > self.remaining:
                data = data[: self.remaining]
                self.reusable = False  # bytes beyond the body
            self.remaining = 0
            self.phase = _DONE
        else:
            self.remaining -= n
        if data:
            self.pieces.append((t, data))

    def _chunked(self, data: bytes, t: float) -> None:
        if self.cpend:
            data = self.cpend + data
            self.cpend = b""
        out: list[bytes] = []
        pos, n = 0, len(data)
        state = self.cstate
        done = False
        while pos < n:
            if state == _DATA:
                end = pos + self.remaining
                if end <= n:
                    out.append(data[pos:end] if pos or end < n else data)
                    self.remaining = 0
                    pos = end
                    state = _DATA_END
                else:
                    out.append(data[pos:] if pos else data)
                    self.remaining -= n - pos
                    pos = n
            elif state == _SIZE:
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    if n - pos > 4096:
                        self._fail(httpx.RemoteProtocolError("chunk size line too long"))
                        return
                    self.cpend = data[pos:]
                    break
                field = data[pos:eol].split(b";", 1)[0].strip()
                try:
                    size = int(field, 16)
                    if size < 0 or field[:1] in (b"-", b"+"):
                        raise ValueError
                except ValueError:
                    self._fail(httpx.RemoteProtocolError(f"bad chunk size {field[:40]!r}"))
                    return
                pos = eol + 2
                if size:
                    self.remaining = size
                    state = _DATA
                else:
                    state = _TRAILER
            elif state == _DATA_END:
                if n - pos < 2:
                    self.cpend = data[pos:]
                    break
                if data[pos : pos + 2] != b"\r\n":
                    self._fail(httpx.RemoteProtocolError("chunk data not followed by CRLF"))
                    return
                pos += 2
                state = _SIZE
            else:  # _TRAILER: header lines until an empty one
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    if n - pos > _MAX_HEAD:
                        self._fail(httpx.RemoteProtocolError("chunked trailer too long"))
                        return
                    self.cpend = data[pos:]
                    break
                if eol == pos:
                    pos += 2
                    done = True
                    break
                pos = eol + 2
        self.cstate = state
        if out:
            self.pieces.append((t, out[0] if len(out) == 1 else b"".join(out)))
        if done:
            self.phase = _DONE
            if pos < n:
                self.reusable = False

    # -- waiting ------------------------------------------------------------------------------
    def _wake(self) -> None:
        w = self.waiter
        if w is not None:
            self.waiter = None
            if not w.done():
                w.set_result(None)

    async def wait(self) -> None:
        """Wait until something arrives (or the read timeout / an error ends the response)."""
        fut = self.loop.create_future()
        self.waiter = fut
        if self.read_timeout is not None:
            self.wait_start = _perf()
            if self.timer is None:
                self.timer = self.loop.call_later(self.read_timeout, self._check_timeout)
        try:
            await fut
        finally:
            if self.waiter is fut:
                self.waiter = None

    def _check_timeout(self) -> None:
        # One timer per connection, re-armed only when it fires: no per-read timer cost.
        self.timer = None
        if self.waiter is None or self.read_timeout is None or self.closed:
            return
        deadline = max(self.last_rx, self.wait_start) + self.read_timeout
        now = _perf()
        if now >= deadline:
            self._fail(httpx.ReadTimeout(f"no data for {self.read_timeout:g} s"))
        else:
            self.timer = self.loop.call_later(deadline - now, self._check_timeout)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    # -- request lifecycle --------------------------------------------------------------------
    def send(self, data: bytes, head_only: bool, read_timeout: float | None) -> None:
        assert self.transport is not None
        self.phase = _HEAD
        self.head_only = head_only
        self.read_timeout = read_timeout
        self.status, self.headers, self.hbuf = 0, [], b""
        self.framing, self.remaining, self.cstate, self.cpend = _LENGTH, 0, _SIZE, b""
        self.pieces.clear()
        self.last_rx = _perf()
        self.transport.write(data)

    def close(self) -> None:
        self.reusable = False
        self._cancel_timer()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class StampedStream(httpx.AsyncByteStream):
    """The response body: one piece per socket read; ``t`` is the last yielded piece's arrival."""

    def __init__(self, conn: _Connection, owner: StampedTransport) -> None:
        self._conn = conn
        self._owner = owner
        self._released = False
        self.t = conn.last_rx  # before any body piece: when the response head arrived

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        pieces = conn.pieces
        while True:
            while pieces:
                self.t, data = pieces.popleft()
                yield data
            if conn.error is not None:
                raise conn.error
            if conn.phase == _DONE:
                return
            await conn.wait()

    async def aclose(self) -> None:
        if self._released:
            return
        self._released = True
        conn = self._conn
        if conn.phase == _DONE and conn.error is None and conn.reusable and not conn.closed:
            conn.phase = _IDLE
            conn.read_timeout = None
            conn._cancel_timer()
            self._owner._release(conn)
        else:
            conn.close()
            self._owner._open.discard(conn)


class StampedTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 for ``http://`` URLs with per-read arrival stamps (see the module docstring).

    ``verify``, ``http2``, ``limits`` and ``trust_env`` only configure the default
    ``httpx.AsyncHTTPTransport`` used for other schemes.
    """

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits | None = None,
        http2: bool = False,
        trust_env: bool = True,
    ) -> None:
        self._fallback_args: dict[str, Any] = {"verify": verify, "http2": http2, "trust_env": trust_env}
        if limits is not None:
            self._fallback_args["limits"] = limits
        self._fallback: httpx.AsyncHTTPTransport | None = None
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme != "http":
            if self._fallback is None:
                self._fallback = httpx.AsyncHTTPTransport(**self._fallback_args)
            return await self._fallback.handle_async_request(request)
        timeouts: dict[str, float | None] = request.extensions.get("timeout") or {}
        key = (url.host, url.port or 80)
        data = await _serialize(request)
        conn = self._take_idle(key)
        if conn is None:
            conn = await self._connect(key, timeouts.get("connect"))
        try:
            trace = request.extensions.get("trace")
            if trace is not None:
                await trace("http11.send_request_headers.started", {"request": request})
            if conn.closed:
                raise httpx.WriteError("connection closed before the request was sent")
            conn.send(data, request.method == "HEAD", timeouts.get("read"))
            while conn.phase == _HEAD and conn.error is None:
                await conn.wait()
            if conn.error is not None:
                raise conn.error
        except BaseException:
            conn.close()
            self._open.discard(conn)
            raise
        stream = StampedStream(conn, self)
        return httpx.Response(
            conn.status,
            headers=conn.headers,
            stream=stream,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": conn.reason,
                STAMPS_EXTENSION: stream,
            },
        )

    def _take_idle(self, key: tuple[str, int]) -> _Connection | None:
        idle = self._idle
        for i in range(len(idle) - 1, -1, -1):
            conn = idle[i]
            if conn.closed or not conn.reusable:
                del idle[i]
                self._open.discard(conn)
                conn.close()
            elif conn.key == key:
                del idle[i]
                return conn
        return None

    async def _connect(self, key: tuple[str, int], timeout: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, proto = await loop.create_connection(lambda: _Connection(key), key[0], key[1])
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connect to {key[0]}:{key[1]} timed out") from exc
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        self._open.add(proto)
        return proto

    def _release(self, conn: _Connection) -> None:
        if len(self._idle) >= _MAX_IDLE:
            conn.close()
            self._open.discard(conn)
            return
        self._idle.append(conn)

    async def aclose(self) -> None:
        conns = list(self._open)
        self._open.clear()
        self._idle.clear()
        for conn in conns:
            conn.close()
        if self._fallback is not None:
            await self._fallback.aclose()
        if conns:
            # Let the transports' connection_lost callbacks run so the sockets are closed now.
            with contextlib.suppress(RuntimeError):
                await asyncio.sleep(0)


async def _serialize(request: httpx.Request) -> bytes:
    """Request line, headers and body as one buffer (chunk-encoded if httpx asked for that)."""
    url = request.url
    parts = [b"%s %s HTTP/1.1\r\n" % (request.method.encode("ascii"), url.raw_path or b"/")]
    chunked = False
    for name, value in request.headers.raw:
        if name.lower() == b"transfer-encoding" and value.lower() == b"chunked":
            chunked = True
        parts.append(b"%s: %s\r\n" % (name, value))
    parts.append(b"\r\n")
    stream = request.stream
    if not isinstance(stream, httpx.AsyncByteStream):
        raise RuntimeError("StampedTransport needs an async request body")
    body = [piece async for piece in stream]
    if chunked:
        for piece in body:
            if piece:
                parts.append(b"%x\r\n%s\r\n" % (len(piece), piece))
        parts.append(b"0\r\n\r\n")
    else:
        parts.extend(body)
    return b"".join(parts)
