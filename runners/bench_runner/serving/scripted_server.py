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
``finish_chunk`` (an empty chunk with ``finish_reason`` written with the last token, as
llama-cpp-python sends), ``empty_first`` (first chunk without text: a role-only delta on the chat
endpoint), ``status`` (answer with that HTTP error), ``disconnect_after`` (drop the connection
after that many chunks).

``chunks`` scripts every chunk instead, each at its own delay, for streams with empty-text
chunks: a list of objects with ``delay_ms`` (after the previous chunk; for the first, after
the request arrived; default ``ttft_ms``, then ``itl_ms``), ``text`` (absent: no text, i.e.
``"text": ""`` on completions and a delta without ``content`` on chat), ``role`` (chat: the delta
says ``"role": "assistant"``) and ``finish_reason``; a plain string is a chunk with that text. The
usage chunk (``"choices": []``) counts ``usage_tokens`` (default: the chunks with text) and,
with ``usage_delay_ms``, is written on its own that long after the last chunk; otherwise it
goes out with the last chunk. An empty list sends no chunk at all. The log keeps the write time
of every chunk (``send_times``) and of a separate usage chunk (``usage_time``), and the start of
the prompt (``prompt_head``).

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
        itl = script.get("itl_ms", DEFAULT_SCRIPT["itl_ms"])
        self.itl_s = [float(x) / 1000.0 for x in itl] if isinstance(itl, list) else [float(itl) / 1000.0]
        self.ttft_s = float(script.get("ttft_ms", DEFAULT_SCRIPT["ttft_ms"])) / 1000.0
        # Explicit chunks: (delay s or None for the default, text or None, role, finish_reason).
        self.items: list[tuple[float | None, str | None, bool, str | None]] | None = None
        if script.get("chunks") is not None:
            self.items = [_chunk_item(c) for c in script["chunks"]]
            n_tokens = len(self.items)
            default_usage = sum(1 for item in self.items if item[1])
        else:
            default_usage = n_tokens
        self.n = n_tokens
        self.usage_tokens = int(script.get("usage_tokens", default_usage))
        delay = script.get("usage_delay_ms")
        self.usage_delay_s = None if delay is None else float(delay) / 1000.0
        self.finish_chunk = bool(script.get("finish_chunk", False))
        self.empty_first = bool(script.get("empty_first", False))
        self.disconnect_after = script.get("disconnect_after")
        self.usage = usage
        self.k = 0
        first_delay = self.items[0][0] if self.items else None
        self.deadline = t_recv + (self.ttft_s if first_delay is None else first_delay)
        self.log = log
        self.send_times: list[float] = []
        if log is not None:
            log["send_times"] = self.send_times

    def _chunk(self, text: str | None, finish: str | None, role: bool = False) -> bytes:
        fin = "null" if finish is None else f'"{finish}"'
        if self.chat:
            parts = ['"role":"assistant"'] if role else []
            if text is not None:
                parts.append(f'"content":{json.dumps(text)}')
            body = (
                f'{{"id":"s","object":"chat.completion.chunk","model":"{self.model}","choices":'
                f'[{{"index":0,"delta":{{{",".join(parts)}}},"finish_reason":{fin}}}]}}'
            )
        else:
            body = (
                f'{{"id":"s","object":"text_completion","model":"{self.model}","choices":'
                f'[{{"index":0,"text":{json.dumps(text or "")},"finish_reason":{fin}}}]}}'
            )
        return _http_chunk(b"data: " + body.encode() + b"\n\n")

    def _spec(self, k: int) -> tuple[str | None, bool, str | None]:
        """(text, role, finish_reason) of chunk ``k``."""
        if self.items is not None:
            _, text, role, finish = self.items[k]
            return text, role, finish
        last = k == self.n - 1
        finish = "length" if last and not self.finish_chunk else None
        if self.empty_first and k == 0:
            return (None, True, finish) if self.chat else ("", False, finish)
        return f" tok{k}", False, finish

    def _delay_after(self, k: int) -> float:
        """Seconds between chunk ``k`` and chunk ``k + 1``."""
        if self.items is not None:
            given = self.items[k + 1][0]
            if given is not None:
                return given
        return self.itl_s[min(k, len(self.itl_s) - 1)]

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        loop.call_at(self.deadline, self._tick)

    def _tick(self) -> None:
        if self.conn.closed:
            return
        if self.n == 0:  # a stream without a single chunk
            self.conn.write(self._usage() + self._done())
            self.conn.stream_done()
            return
        k = self.k
        last = k == self.n - 1
        text, role, finish = self._spec(k)
        data = self._chunk(text, finish, role)
        separate_usage = self.usage and self.usage_delay_s is not None
        if last:
            if self.finish_chunk and self.items is None:
                data += self._chunk(None if self.chat else "", "length")
            if not separate_usage:
                data += self._usage() + self._done()
        self.send_times.append(time.perf_counter())
        self.conn.write(data)
        self.k += 1
        if self.disconnect_after is not None and self.k >= int(self.disconnect_after):
            self.conn.abort()
            return
        if last:
            if separate_usage and self.usage_delay_s is not None:
                self.deadline += self.usage_delay_s
                self.loop.call_at(self.deadline, self._usage_tick)
            else:
                self.conn.stream_done()
            return
        self.deadline += self._delay_after(k)
        self.loop.call_at(self.deadline, self._tick)

    def _usage_tick(self) -> None:
        if self.conn.closed:
            return
        if self.log is not None:
            self.log["usage_time"] = time.perf_counter()
        self.conn.write(self._usage() + self._done())
        self.conn.stream_done()

    def _usage(self) -> bytes:
        if not self.usage:
            return b""
        body = json.dumps(
            {
                "id": "s",
                "object": "text_completion",
                "model": self.model,
                "choices": [],
                "usage": {
                    "prompt_tokens": 1,
                    "completion_tokens": self.usage_tokens,
                    "total_tokens": self.usage_tokens + 1,
                },
            }
        )
        return _http_chunk(b"data: " + body.encode() + b"\n\n")

    def _done(self) -> bytes:
        return _http_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"


def _chunk_item(spec: Any) -> tuple[float | None, str | None, bool, str | None]:
    """One entry of a script's ``chunks``: (delay s or None, text or None, role, finish_reason)."""
    if isinstance(spec, str):
        return None, spec, False, None
    if not isinstance(spec, dict):
        raise ValueError(f"a scripted chunk is a string or an object, got {spec!r}")
    delay = spec.get("delay_ms")
    text = spec.get("text")
    finish = spec.get("finish_reason")
    return (
        None if delay is None else float(delay) / 1000.0,
        None if text is None else str(text),
        bool(spec.get("role", False)),
        None if finish is None else str(finish),
    )


def _prompt_head(req: dict[str, Any]) -> str:
    """The first 200 characters of a request's prompt (or last chat message), for the log."""
    prompt = req.get("prompt")
    if prompt is None:
        messages = req.get("messages") or [{}]
        prompt = messages[-1].get("content", "") if isinstance(messages[-1], dict) else ""
    return prompt[:200] if isinstance(prompt, str) else ""


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
            entry: dict[str, Any] = {"t_recv": t_recv, "prompt_head": _prompt_head(req)}
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
