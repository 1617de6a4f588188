"""vLLM's rule for streamed messages, with empty-text chunks sent at exact delays.

vLLM ``bench serve`` counts every SSE message whose ``choices`` list is non-empty as a chunk,
whatever its text: the first sets TTFT, each later one adds an ITL gap, the last ends E2EL. A
usage message (``"choices": []``), ``[DONE]`` and comments are not chunks. The scripted server
sends a stream with an empty first chunk (a special token, or a chat role-only delta), an
empty chunk in the middle, a last chunk with only ``finish_reason``, and the usage message on
its own, each 15-20 ms after the one before; the client must count exactly the messages with
choices, in order, and stamp each after the server wrote it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from bench_runner.serving.client import RequestOutput, RequestSpec
from bench_runner.serving.loadgen import arun_benchmark
from bench_runner.serving.scripted_server import ScriptedServerProcess

from .fakes import quiet_config

# chunk k: (what it carries, delay after the previous write in ms)
STREAM: list[dict[str, Any]] = [
    {"text": "", "delay_ms": 20.0},  # empty first chunk: a special token's empty text
    {"text": " a", "delay_ms": 15.0},
    {"text": "", "delay_ms": 15.0},  # empty chunk mid-stream
    {"text": " b", "delay_ms": 15.0},
    {"finish_reason": "length", "delay_ms": 15.0},  # no text, only finish_reason
]
CHAT_STREAM: list[dict[str, Any]] = [
    {"role": True, "delay_ms": 20.0},  # role-only delta, no content key
    {"text": " a", "delay_ms": 15.0},
    {"text": "", "delay_ms": 15.0},  # delta with empty content
    {"text": " b", "delay_ms": 15.0},
    {"finish_reason": "stop", "delay_ms": 15.0},  # empty delta, only finish_reason
]
USAGE_DELAY_MS = 15.0


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServerProcess]:
    with ScriptedServerProcess(busy=False) as srv:
        yield srv


async def _one(
    server: ScriptedServerProcess, endpoint: str, chunks: list[dict[str, Any]]
) -> tuple[RequestOutput, Any]:
    key = f"rule-{endpoint}"
    script = {"id": key, "chunks": chunks, "usage_delay_ms": USAGE_DELAY_MS, "usage_tokens": 2}
    cfg = quiet_config(server.base_url, endpoint=endpoint)
    result = await arun_benchmark(cfg, requests=[RequestSpec("p", 4, 2, {"scripted": script})])
    async with httpx.AsyncClient() as client:
        log = (await client.get(server.base_url + "/_log")).json()[key]
    return result.outputs[0], log


@pytest.mark.parametrize(("endpoint", "chunks"), [("completions", STREAM), ("chat", CHAT_STREAM)])
async def test_every_message_with_choices_is_a_chunk(
    server: ScriptedServerProcess, endpoint: str, chunks: list[dict[str, Any]]
) -> None:
    o, log = await _one(server, endpoint, chunks)
    assert o.success, o.error
    sends, usage_sent = log["send_times"], log["usage_time"]
    assert len(sends) == 5
    # Messages in stream order: 5 chunks, the usage message, [DONE]. The chunks are exactly the
    # first five messages' stamps; usage and [DONE] are not chunks.
    assert len(o.event_times) == 7
    assert o.chunk_times == o.event_times[:5]
    assert all(got > sent for got, sent in zip(o.chunk_times, sends, strict=True))
    assert o.event_times[5] > usage_sent
    # TTFT: the first chunk, although it has no text.
    assert o.ttft_time == o.chunk_times[0]
    assert o.ttft == o.chunk_times[0] - o.start
    # ITL: one gap per chunk after the first, the empty ones included.
    assert o.itl == [b - a for a, b in zip(o.chunk_times, o.chunk_times[1:], strict=False)]
    assert len(o.itl) == 4
    # E2EL ends at the finish-only chunk, not at the last text and not at the usage message.
    assert o.e2el == o.chunk_times[4] - o.start
    assert o.chunk_times[4] > sends[4] and o.chunk_times[4] <= o.event_times[5]
    assert o.e2el == pytest.approx(o.ttft + sum(o.itl), abs=1e-12)
    # Output tokens from usage (2), not from the 5 chunks: TPOT = (E2EL - TTFT) / (2 - 1).
    assert o.output_tokens == 2 and o.output_tokens_source == "usage"
    assert o.tpot == pytest.approx(o.e2el - o.ttft, abs=1e-12)
    # The text-only rule (SGLang, AIPerf) is kept beside it: first text chunk, text chunks.
    assert o.first_nonempty_time == o.chunk_times[1]
    assert o.content_times == [o.chunk_times[0], o.chunk_times[1], o.chunk_times[3]]
    assert o.text == " a b" and o.finish_reason == chunks[4]["finish_reason"]


async def test_server_kept_the_scripted_delays(server: ScriptedServerProcess) -> None:
    """The server writes each chunk when its script says (so the delays are known, not observed).

    A sleeping (select) loop wakes within tens of microseconds on a quiet machine; on a loaded
    one only lateness is possible, so this checks that no chunk went out early.
    """
    _, log = await _one(server, "completions", STREAM)
    planned = log["t_recv"]
    for sent, chunk in zip(log["send_times"], STREAM, strict=True):
        planned += chunk["delay_ms"] / 1000.0
        assert sent >= planned - 1e-4  # the schedule is absolute: a late chunk does not shift it
    assert log["usage_time"] >= planned + USAGE_DELAY_MS / 1000.0 - 1e-4


async def test_stream_without_chunks_fails_and_contributes_nothing(server: ScriptedServerProcess) -> None:
    # Only the usage message and [DONE]: vLLM's "Never received a valid chunk to calculate TTFT".
    script = {"chunks": [], "ttft_ms": 5}
    result = await arun_benchmark(
        quiet_config(server.base_url), requests=[RequestSpec("p", 4, 2, {"scripted": script})]
    )
    o = result.outputs[0]
    assert not o.success and "without any choices event" in o.error
    assert o.chunk_times == [] and len(o.event_times) == 2
    doc = result.to_json()
    assert doc["completed"] == 0 and doc["failed"] == 1
    assert doc["ttfts"] == [None] and doc["itls"] == [None] and doc["e2els"] == [None]
