"""A scripted OpenAI-compatible SSE server that emits tokens at exactly known times.

Ground truth for the load generator's timing: a raw asyncio HTTP/1.1 server (no framework,
no uvicorn) whose event loop uses ``select()``, which takes a microsecond timeout, instead of
``epoll``, whose millisecond timeout would make every timer up to 1 ms late; by default it goes further
and busy-polls (``loops.busy_loop``), so a sleeping vCPU's wake-up delay does not shift the
chunks either; pin it to a core of its own (``--cpu``). Each chunk is
written with ``transport.write`` at ``t_recv + ttft + sum(itl[:k])`` on the shared monotonic
clock (``time.perf_counter`` is ``CLOCK_MONOTONIC`` on Linux, the same in every process), and
the actual write times are kept per request and served at ``GET /_log``.

The script comes from the request body's ``"scripted"`` object, falling back to the server's
defaults: ``ttft_ms``, ``itl_ms`` (number or list), ``n_tokens`` (default ``max_tokens``),
``id`` (key in the log), ``usage`` (default: honour ``stream_options.include_usage``),
``finish_chunk`` (a separate empty chunk with ``finish_reason``, as llama-cpp-python sends),
``empty_first`` (first chunk without text, like a chat role chunk), ``status`` (answer with that
HTTP error), ``disconnect_after`` (drop the connection after that many chunks).

Run: ``python -m bench_runner.serving.scripted_server --port 0 [--cpu N]``; it prints
``READY <port>`` on stdout. ``ScriptedServerProcess`` does that from Python.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from .loops import busy_loop, precise_loop, reduce_timer_slack

DEFAULT_SCRIPT: dict[str, Any] = {"ttft_ms": 10.0, "itl_ms": 5.0}


class _Stream:
    """Writes one scripted SSE response with timer callbacks (no coroutine per chunk)."""

    def __init__(
        self,
        conn: _Connection,
        chat: bool,
        model: str,
        script: dict[str, Any],
        n_tokens: int,
        usage: bool,
        t_recv: float,
        log: dict[str, Any] | None,
    ) -> None:
        self.conn = conn
        self.chat = chat
        self.model = model
        self.n = n_tokens
        itl = script.get("itl_ms", DEFAULT_SCRIPT["itl_ms"])
        self.itl_s = [float(x) / 1000.0 for x in itl] if isinstance(itl, list) else [float(itl) / 1000.0]
        self.ttft_s = float(script.get("ttft_ms", DEFAULT_SCRIPT["ttft_ms"])) / 1000.0
        self.finish_chunk = bool(script.get("finish_chunk", False))
        self.empty_first = bool(script.get("empty_first", False))
        self.disconnect_after = script.get("disconnect_after")
        self.usage = usage
        self.k = 0
        self.deadline = t_recv + self.ttft_s
        self.log = log
        self.send_times: list[float] = []
        if log is not None:
            log["send_times"] = self.send_times

    def _chunk(self, text: str, finish: str | None) -> bytes:
        fin = "null" if finish is None else f'"{finish}"'
        txt = json.dumps(text)
        if self.chat:
            body = (
                f'{{"id":"s","object":"chat.completion.chunk","model":"{self.model}","choices":'
                f'[{{"index":0,"delta":{{"content":{txt}}},"finish_reason":{fin}}}]}}'
            )
        else:
            body = (
                f'{{"id":"s","object":"text_completion","model":"{self.model}","choices":'
                f'[{{"index":0,"text":{txt},"finish_reason":{fin}}}]}}'
            )
        return _http_chunk(b"data: " + body.encode() + b"\n\n")

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        loop.call_at(self.deadline, self._tick)

    def _tick(self) -> None:
        if self.conn.closed:
            return
        k = self.k
        last = k == self.n - 1
        text = "" if self.empty_first and k == 0 else f" tok{k}"
        finish = "length" if last and not self.finish_chunk else None
        data = self._chunk(text, finish)
        if last:
            data += self._tail()
        self.send_times.append(time.perf_counter())
        self.conn.write(data)
        self.k += 1
        if self.disconnect_after is not None and self.k >= int(self.disconnect_after):
            self.conn.abort()
            return
        if last:
            self.conn.stream_done()
            return
        self.deadline += self.itl_s[min(k, len(self.itl_s) - 1)]
        self.loop.call_at(self.deadline, self._tick)

    def _tail(self) -> bytes:
        out = b""
        if self.finish_chunk:
            out += self._chunk("", "length")
        if self.usage:
            body = json.dumps(
                {
                    "id": "s",
                    "object": "text_completion",
                    "model": self.model,
                    "choices": [],
                    "usage": {"prompt_tokens": 1, "completion_tokens": self.n, "total_tokens": self.n + 1},
                }
            )
            out += _http_chunk(b"data: " + body.encode() + b"\n\n")
        out += _http_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"
        return out


def _http_chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


class _Connection(asyncio.Protocol):
    """HTTP/1.1 keep-alive connection: one request at a time, Content-Length bodies."""

    def __init__(self, server: ScriptedServer) -> None:
        self.server = server
        self.buf = b""
        self.closed = False
        self.busy = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def stream_done(self) -> None:
        self.busy = False
        if self.buf:
            self._parse()

    def data_received(self, data: bytes) -> None:
        t_recv = time.perf_counter()
        self.buf += data
        if not self.busy:
            self._parse(t_recv)

    def _parse(self, t_recv: float | None = None) -> None:
        head_end = self.buf.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = self.buf[:head_end].decode("latin-1")
        lines = head.split("\r\n")
        method, path, _ = (lines[0].split(" ") + ["", ""])[:3]
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        total = head_end + 4 + length
        if len(self.buf) < total:
            return
        body = self.buf[head_end + 4 : total]
        self.buf = self.buf[total:]
        self.busy = True
        self.server.handle(self, method, path, body, t_recv if t_recv is not None else time.perf_counter())

    def respond_json(self, status: int, obj: Any) -> None:
        payload = json.dumps(obj).encode()
        reason = {200: "OK", 404: "Not Found"}.get(status, "Error")
        self.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (status, reason.encode(), len(payload), payload)
        )
        self.stream_done()


class ScriptedServer:
    """The server object; use ``await start()`` inside a loop made by ``precise_loop()``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, default_script: dict[str, Any] | None = None):
        self.host = host
        self.port = port
        self.default_script = dict(default_script or DEFAULT_SCRIPT)
        self.log: dict[str, dict[str, Any]] = {}
        self._server: asyncio.base_events.Server | None = None
        self._seq = 0

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), self.host, self.port)
        sock = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def handle(self, conn: _Connection, method: str, path: str, body: bytes, t_recv: float) -> None:
        path = path.split("?", 1)[0]
        if method == "GET" and path in ("/health", "/v1/models"):
            conn.respond_json(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})
            return
        if method == "GET" and path == "/_log":
            conn.respond_json(200, self.log)
            return
        if method == "POST" and path == "/_log/clear":
            self.log.clear()
            conn.respond_json(200, {"cleared": True})
            return
        if method == "POST" and path in ("/v1/completions", "/v1/chat/completions"):
            try:
                req = json.loads(body or b"{}")
            except ValueError:
                conn.respond_json(400, {"error": {"message": "bad json"}})
                return
            script = {**self.default_script, **(req.get("scripted") or {})}
            if "status" in script:
                conn.respond_json(int(script["status"]), {"error": {"message": "scripted failure"}})
                return
            n = int(script.get("n_tokens") or req.get("max_tokens") or 16)
            usage = bool(script.get("usage", (req.get("stream_options") or {}).get("include_usage", False)))
            self._seq += 1
            key = str(script.get("id", self._seq))
            entry: dict[str, Any] = {"t_recv": t_recv}
            self.log[key] = entry
            conn.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            stream = _Stream(
                conn,
                path.endswith("chat/completions"),
                str(req.get("model", "scripted")),
                script,
                n,
                usage,
                t_recv,
                entry,
            )
            stream.start(asyncio.get_running_loop())
            return
        conn.respond_json(404, {"error": {"message": f"no route {method} {path}"}})


def serve_forever(
    host: str, port: int, ready: Callable[[int], None] | None = None, busy: bool = True
) -> None:
    """Run the server until interrupted, busy-polling (default) or on a precise sleeping loop."""
    reduce_timer_slack()
    loop = busy_loop() if busy else precise_loop()
    asyncio.set_event_loop(loop)
    server = ScriptedServer(host, port)
    bound = loop.run_until_complete(server.start())
    if ready:
        ready(bound)
    try:
        loop.run_forever()
    finally:
        loop.run_until_complete(server.close())
        loop.close()


class ScriptedServerProcess:
    """Start the scripted server in a child process (optionally pinned to one CPU)."""

    def __init__(self, cpu: int | None = None, host: str = "127.0.0.1", busy: bool = True) -> None:
        self.cpu = cpu
        self.busy = busy
        self.host = host
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> ScriptedServerProcess:
        cmd = [
            sys.executable,
            "-m",
            "bench_runner.serving.scripted_server",
            "--host",
            self.host,
            "--port",
            "0",
        ]
        if self.cpu is not None:
            cmd += ["--cpu", str(self.cpu)]
        if not self.busy:
            cmd.append("--no-busy")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("READY"):
                self.port = int(line.split()[1])
                return self
            if not line and self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError("scripted server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> ScriptedServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Scripted OpenAI-compatible SSE server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    parser.add_argument("--no-busy", action="store_true", help="sleep between events instead of polling")
    args = parser.parse_args(argv)
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})

    def ready(port: int) -> None:
        print(f"READY {port}", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        serve_forever(args.host, args.port, ready, busy=not args.no_busy)
    return 0


if __name__ == "__main__":
    sys.exit(main())
