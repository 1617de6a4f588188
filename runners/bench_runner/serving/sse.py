"""A small, allocation-light Server-Sent Events splitter.

The load generator timestamps every network read, so the parser must be cheap: it works on
bytes, splits whole events on the blank line (``b"\\n\\n"``) with one ``bytes.split`` per read
instead of iterating line by line, and only falls back to per-line handling for the rare event
that spans several ``data:`` lines or carries comments.
"""

from __future__ import annotations

_SEP = b"\n\n"


class SSESplitter:
    """Feed raw bytes, get back the ``data`` payloads of the events completed by them.

    Comment lines (``: ping``), ``event:``/``id:``/``retry:`` fields and empty events are
    dropped; a multi-line ``data`` field is joined with ``\\n`` as the SSE spec says.
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes from the stream; return the payload of every event they complete."""
        buf = self._buf + data if self._buf else data
        if b"\r" in data or (self._buf and self._buf.endswith(b"\r")):
            # CRLF line endings: normalise once per read (rare; llama.cpp, vLLM use LF).
            buf = buf.replace(b"\r\n", b"\n")
        if _SEP not in buf:
            self._buf = buf
            return []
        *events, self._buf = buf.split(_SEP)
        out: list[bytes] = []
        for ev in events:
            # Fast path: a single "data: ..." line, by far the common case.
            if ev.startswith(b"data:") and b"\n" not in ev:
                payload = ev[5:]
                out.append(payload[1:] if payload.startswith(b" ") else payload)
            elif ev:
                joined = _parse_event(ev)
                if joined is not None:
                    out.append(joined)
        return out

    @property
    def pending(self) -> bytes:
        """Bytes received after the last complete event."""
        return self._buf

    def flush(self) -> list[bytes]:
        """Treat buffered bytes as a final event (a stream that ends without a blank line)."""
        rest, self._buf = self._buf.strip(b"\n"), b""
        if not rest:
            return []
        payload = _parse_event(rest)
        return [] if payload is None else [payload]


def _parse_event(ev: bytes) -> bytes | None:
    """Slow path: collect the data lines of one event block."""
    parts: list[bytes] = []
    for line in ev.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            parts.append(value[1:] if value.startswith(b" ") else value)
        # Anything else (comments starting with ':', event/id/retry fields) carries no data.
    if not parts:
        return None
    return b"\n".join(parts)
