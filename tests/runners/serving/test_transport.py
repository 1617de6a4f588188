"""StampedTransport: HTTP/1.1 framing, per-read arrival stamps, errors, and its use by the client.

Most tests run a tiny asyncio server in the test's own loop that writes exactly the bytes (and
splits) the test wants, noting ``time.perf_counter()`` just before each write, so the arrival
stamps can be checked against the write times on the same clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from bench_runner.serving.client import RequestOutput, make_client, send_request
from bench_runner.serving.scripted_server import ScriptedServerProcess
from bench_runner.serving.transport import STAMPS_EXTENSION, StampedTransport, _Connection

Handler = Callable[["Req", asyncio.StreamWriter], Awaitable[bool]]


class Req:
    def __init__(self, head: bytes, body: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        self.method, self.target, self.version = lines[0].split(" ")
        self.headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:] if line]
        self.body = body

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


class RawServer:
    """Reads HTTP/1.1 requests; ``handler`` writes the response and says whether to keep going."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Req] = []
        self.connections = 0
        self.writes: list[float] = []  # perf_counter just before each timed write
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.url = ""

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for writer in list(self._writers):
            writer.transport.abort()  # ends the handler's read with an error, no cancellation
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        self.writes.append(time.perf_counter())
        writer.write(data)
        await writer.drain()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                req = Req(head[:-4], b"")
                if (req.header("transfer-encoding") or "").lower() == "chunked":
                    body = b""
                    while True:
                        size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
                        chunk = await reader.readexactly(size + 2)
                        if size == 0:
                            break
                        body += chunk[:-2]
                    req.body = body
                else:
                    req.body = await reader.readexactly(int(req.header("content-length") or 0))
                self.requests.append(req)
                if not await self.handler(req, writer):
                    break
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self._tasks.discard(task)
            self._writers.discard(writer)


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _event(text: str, finish: str | None = None) -> bytes:
    msg = {"choices": [{"index": 0, "text": text, "finish_reason": finish}]}
    return b"data: " + json.dumps(msg).encode() + b"\n\n"


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


@contextlib.asynccontextmanager
async def _client(**kw: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=StampedTransport(), timeout=httpx.Timeout(10.0), **kw) as c:
        yield c


async def _pieces(resp: httpx.Response) -> list[tuple[float, bytes]]:
    stamps = resp.extensions[STAMPS_EXTENSION]
    return [(stamps.t, piece) async for piece in resp.aiter_raw()]


# -- framing ---------------------------------------------------------------------------------
async def test_chunked_body_one_piece_per_read_stamped_on_arrival() -> None:
    parts = [b"first piece\n", b"second\n", b"third and last\n"]

    async def handler(req: Req, w: asyncio.StreamWriter) -> bool:
        await srv.write(w, CHUNKED_HEAD)
        for p in parts:
            await asyncio.sleep(0.02)
            await srv.write(w, _chunk(p))
        await asyncio.sleep(0.02)
        await srv.write(w, b"0\r\n\r\n")
        return True

    async with (
        RawServer(handler) as srv,
        _client() as client,
        client.stream("GET", srv.url + "/x") as resp,
    ):
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "text/event-stream"
        await asyncio.sleep(0.2)  # a busy consumer: everything arrives before it reads
        t_read = time.perf_counter()
        got = await _pieces(resp)
    assert [p for _, p in got] == parts  # one piece per read, not merged while queued
    assert len(srv.writes) == 5
    for (t, _), sent in zip(got, srv.writes[1:], strict=False):
        assert sent <= t < sent + 0.015 < t_read  # stamped when the read arrived, not when consumed


async def test_content_length_body() -> None:
    body = b"x" * 5000 + b"end"

    async def handler(req: Req, w: asyncio.StreamWriter) -> bool:
        await srv.write(w, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body[:100]))
        await asyncio.sleep(0.02)
        await srv.write(w, body[100:])
        return True

    async with RawServer(handler) as srv, _client() as client:
        async with client.stream("GET", srv.url) as resp:
            got = await _pieces(resp)
        assert b"".join(p for _, p in got) == body
        assert got[-1][0] >= srv.writes[-1]
        # A whole-body read through the normal httpx API works too.
        resp2 = await client.get(srv.url)
        assert resp2.content == body
        assert srv.connections == 1  # keep-alive: the second request reused the connection


async def test_body_until_close_and_connection_close_header() -> None:
    async def handler(req: Req, w: asyncio.StreamWriter) -> bool:
        if req.target == "/close":
            await srv.write(w, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        else:
            await srv.write(w, b"HTTP/1.0 200 OK\r\n\r\nuntil the end")
        return False

    async with RawServer(handler) as srv, _client() as client:
        assert (await client.get(srv.url + "/eof")).content == b"until the end"
        assert (await client.get(srv.url + "/close")).content == b"ok"
        assert (await client.get(srv.url + "/close")).content == b"ok"
        assert srv.connections == 3


def _feed_all(splits: list[bytes]) -> tuple[_Connection, list[tuple[float, bytes]]]:
    conn = _Connection(("x", 80))
    conn.phase = 1  # waiting for the head
    for s in splits:
        conn.data_received(s)
    return conn, list(conn.pieces)


async def test_chunked_decoder_every_split_point() -> None:
    payloads = [b"data: one\n\n", b"data: two\n\n", b"d" * 300]
    raw = (
        CHUNKED_HEAD
        + b"".join(_chunk(p) for p in payloads[:2])
        + b"12c;ext=1\r\n"  # 300 with a chunk extension
        + payloads[2]
        + b"\r\n0\r\nX-Trailer: y\r\n\r\n"
    )
    whole = b"".join(payloads)
    for i in range(1, len(raw)):
        for j in (i + 1, i + 7, len(raw)):
            parts = [raw[:i], raw[i:j], raw[j:]]
            conn, pieces = _feed_all([p for p in parts if p])
            assert conn.error is None, (i, j, conn.error)
            assert conn.phase == 3, (i, j)
            assert b"".join(p for _, p in pieces) == whole, (i, j)
            assert all(p for _, p in pieces)  # framing-only reads yield nothing


async def test_malformed_chunk_size_is_a_protocol_error() -> None:
    conn, _ = _feed_all([CHUNKED_HEAD + b"zz\r\nhello\r\n"])
    assert isinstance(conn.error, httpx.RemoteProtocolError)
    conn, _ = _feed_all([CHUNKED_HEAD + b"5\r\nhelloXX0\r\n\r\n"])
    assert isinstance(conn.error, httpx.RemoteProtocolError)


# -- SSE timing through send_request -----------------------------------------------------------
async def test_sse_event_split_across_reads_gets_the_later_stamp() -> None:
    first, second, third = _event(" a"), _event(" b"), _event(" c", "length")
    frame2 = _chunk(second)
    cut = len(frame2) // 2

    async def handler(req: Req, w: asyncio.StreamWriter) -> bool:
        await srv.write(w, CHUNKED_HEAD + _chunk(first) + frame2[:cut])  # event 2 starts here
        await asyncio.sleep(0.05)
        await srv.write(w, frame2[cut:])  # ... and ends here
        await asyncio.sleep(0.05)
        # Event 3 split inside its chunk-size line, then the terminator.
        frame3 = _chunk(third)
        await srv.write(w, frame3[:1])
        await asyncio.sleep(0.05)
        await srv.write(w, frame3[1:] + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        return True

    async with RawServer(handler) as srv, _client() as client:
        out = await send_request(client, srv.url + "/v1/completions", {"prompt": "p"}, RequestOutput(0, 1, 3))
    assert out.success, out.error
    assert out.text == " a b c" and out.finish_reason == "length"
    t_head, t_rest2, t_start3, t_rest3 = srv.writes
    ct = out.content_times
    assert len(ct) == 3
    assert t_head <= ct[0] < t_rest2
    assert t_rest2 <= ct[1] < t_rest2 + 0.02  # the read with the final byte, not the first half
    assert t_rest3 <= ct[2] < t_rest3 + 0.02
    # Issued, then handed to the socket, before the server wrote anything.
    assert out.wire_start is not None and out.start <= out.wire_start <= t_head
    assert out.event_times[-1] == ct[2]  # [DONE] arrived in the same read


async def test_non_200_status_is_recorded() -> None:
    async def handler(req: Req, w: asyncio.StreamWriter) -> bool:
        body = b'{"error": {"message": "overloaded"}}'
        await srv.write(
            w, b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        return True

    async with RawServer(handler) as srv, _client() as client:
        out = await send_request(client, srv.url + "/v1/completions", {"prompt": "p"}, RequestOutput(0, 1, 3))
    assert not out.success
    assert out.status_code == 503
    assert out.error.startswith("HTTP 503") and "overloaded" in out.error


async def test_connection_closed_mid_stream_records_an_error() -> None:
    async def handler(req: Req, w: asyncio.StreamWriter) -> bool:
        await srv.write(w, CHUNKED_HEAD + _chunk(_event(" a")) + _chunk(_event(" b"))[:20])
        await asyncio.sleep(0.02)
        return False  # closes the connection in the middle of a chunk

    async with RawServer(handler) as srv, _client() as client:
        out = await send_request(client, srv.url + "/v1/completions", {"prompt": "p"}, RequestOutput(0, 1, 3))
        assert not out.success
        assert "RemoteProtocolError" in out.error
        assert len(out.content_times) == 1 and out.text == " a" and out.end_time is not None
        # The broken connection is not reused.
        out2 = await send_request(
            client, srv.url + "/v1/completions", {"prompt": "p"}, RequestOutput(1, 1, 3)
        )
        assert "RemoteProtocolError" in out2.error
    assert srv.connections == 2


async def test_no_response_and_connection_refused() -> None:
    async def handler(req: Req, w: asyncio.StreamWriter) -> bool:
        return False

    async with RawServer(handler) as srv, _client() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(srv.url)
        url = srv.url
    async with _client() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(url)  # the server is gone


async def test_read_timeout() -> None:
    async def handler(req: Req, w: asyncio.StreamWriter) -> bool:
        await srv.write(w, CHUNKED_HEAD + _chunk(b"x"))
        await asyncio.sleep(1.0)
        return False

    async with (
        RawServer(handler) as srv,
        httpx.AsyncClient(transport=StampedTransport(), timeout=httpx.Timeout(0.2)) as client,
        client.stream("GET", srv.url) as resp,
    ):
        t0 = time.perf_counter()
        with pytest.raises(httpx.ReadTimeout):
            await resp.aread()
        assert 0.15 < time.perf_counter() - t0 < 0.6


# -- the request on the wire -------------------------------------------------------------------
async def test_request_line_headers_and_body() -> None:
    async def handler(req: Req, w: asyncio.StreamWriter) -> bool:
        await srv.write(w, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        return True

    async def gen() -> AsyncIterator[bytes]:
        yield b"streamed "
        yield b""
        yield b"body"

    payload = {"model": "m", "prompt": "héllo", "stream": True}
    async with RawServer(handler) as srv, _client() as client:
        out = await send_request(
            client,
            srv.url + "/v1/completions?a=1&b=x%20y",
            payload,
            RequestOutput(0, 1, 1),
            headers={"X-Test": "1"},
        )
        assert out.status_code == 200
        await client.post(srv.url + "/up", content=gen())
        await client.head(srv.url + "/h")
    req, up, head = srv.requests
    assert (req.method, req.target, req.version) == ("POST", "/v1/completions?a=1&b=x%20y", "HTTP/1.1")
    assert req.header("host") == srv.url.removeprefix("http://")
    assert req.header("content-type") == "application/json"
    assert req.header("accept") == "text/event-stream"
    assert req.header("x-test") == "1"
    assert req.header("content-length") == str(len(req.body))
    assert json.loads(req.body) == payload
    assert up.header("transfer-encoding") == "chunked" and up.body == b"streamed body"
    assert head.method == "HEAD"
    assert srv.connections == 1


def test_https_goes_to_the_default_transport() -> None:
    async def main() -> None:
        transport = StampedTransport()
        async with httpx.AsyncClient(transport=transport, timeout=2.0) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get("https://127.0.0.1:1/")
            assert isinstance(transport._fallback, httpx.AsyncHTTPTransport)

    asyncio.run(main())


# -- against the scripted server (separate process, its own write log) -------------------------
@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedServerProcess]:
    with ScriptedServerProcess(busy=False) as srv:
        yield srv


@pytest.mark.parametrize("stamped", [True, False])
async def test_scripted_server_stream(scripted: ScriptedServerProcess, stamped: bool) -> None:
    url = scripted.base_url
    async with make_client(timeout=httpx.Timeout(10.0), stamped=stamped) as client:
        await client.post(url + "/_log/clear")
        script = {"id": "t", "n_tokens": 8, "ttft_ms": 5.0, "itl_ms": 3.0, "finish_chunk": True}
        payload = {"model": "m", "prompt": "p", "max_tokens": 8, "stream": True, "scripted": script}
        payload["stream_options"] = {"include_usage": True}
        out = await send_request(client, url + "/v1/completions", payload, RequestOutput(0, 1, 8))
        log = (await client.get(url + "/_log")).json()["t"]
    assert out.success, out.error
    assert out.output_tokens == 8 and out.output_tokens_source == "usage"
    sends = log["send_times"]
    assert len(out.content_times) == len(sends) == 8
    # The finish-only chunk, written with the last token, is a ninth chunk (vLLM's rule).
    assert len(out.chunk_times) == 9 and out.chunk_times[:8] == out.content_times
    assert out.wire_start is not None and out.start <= out.wire_start <= log["t_recv"]
    for got, sent in zip(out.content_times, sends, strict=True):
        assert sent <= got < sent + 0.05


async def test_pool_switch(scripted: ScriptedServerProcess) -> None:
    from bench_runner.serving.loadgen import BenchConfig, ClientPool

    assert BenchConfig(base_url="http://x").stamped_transport is True
    pool = ClientPool(httpx.Timeout(5.0), stamped=False)
    client = pool.acquire()
    resp = await client.get(scripted.base_url + "/health")
    assert STAMPS_EXTENSION not in resp.extensions
    await pool.aclose()
    pool = ClientPool(httpx.Timeout(5.0))
    client = pool.acquire()
    resp = await client.get(scripted.base_url + "/health")
    assert STAMPS_EXTENSION in resp.extensions and resp.json()["data"][0]["id"] == "scripted"
    await pool.aclose()
