"""Workloads: prompts that share no prefix by accident, exact lengths, end-of-generation tokens.

The prefix checks use the reference model's own tokenizer (Gemma 3, loaded vocabulary-only with
llama-cpp-python, as its server tokenizes) where llama-cpp-python and the model are installed,
and a word-level tokenizer otherwise, so they always run.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import httpx
import pytest
from bench_runner.serving.client import RequestSpec
from bench_runner.serving.loadgen import arun_benchmark, arun_sweep
from bench_runner.serving.scripted_server import ScriptedServerProcess
from bench_runner.serving.workload import (
    _OPENING_WORDS,
    Tokenizer,
    Workload,
    WorkloadError,
    build_requests,
    detect_eog_tokens,
    eos_suppression,
    exact_prompt,
    unique_opening,
)

from .fakes import FEW, PieceTokenizer, max_shared_leading, quiet_config, real_tokenizer


@pytest.fixture(scope="module")
def tokenizer() -> Iterator[Tokenizer]:
    yield real_tokenizer() or PieceTokenizer.words()


async def test_no_two_prompts_of_a_run_share_a_prefix(tokenizer: Tokenizer) -> None:
    """Measured prompts, warm-ups and a second sweep point, built as ``loadgen`` builds them.

    Before the unique openings, two consecutive prompts of the seed-0 workload began with the
    same two corpus sentences (39 tokens reused by llama.cpp's cache)."""
    wl = Workload(128, 16, 100, seed=0)
    specs, exact = await build_requests(wl, tokenizer, first_index=0)
    warm, _ = await build_requests(wl, tokenizer, count=4, salt=1, first_index=100)
    second, _ = await build_requests(wl, tokenizer, first_index=104)
    prompts = [s.prompt for s in specs + warm + second]
    assert exact and len(set(prompts)) == len(prompts)
    assert await max_shared_leading(tokenizer, prompts) <= FEW
    for s in specs[:20] + warm:  # still exact lengths, specials included
        assert len(await tokenizer.encode(s.prompt)) == 128


async def test_shared_prefix_on_purpose(tokenizer: Tokenizer) -> None:
    wl = Workload(96, 8, 30, seed=2, shared_prefix_len=24)
    specs, _ = await build_requests(wl, tokenizer)
    special = len(await tokenizer.encode(""))
    seqs = [(await tokenizer.encode(s.prompt))[special:] for s in specs]
    assert all(len(x) + special == 96 for x in seqs)
    # Every prompt starts with the same 24 tokens (give or take the token at the seam) ...
    assert all(x[:23] == seqs[0][:23] for x in seqs)
    # ... and no two share much more than that.
    assert await max_shared_leading(tokenizer, [s.prompt for s in specs]) <= 24 + FEW
    with pytest.raises(WorkloadError):
        await build_requests(Workload(16, 8, 2, shared_prefix_len=16), tokenizer)


def test_openings_word_level() -> None:
    """The first W prompts open with W different words; after that the second word differs."""
    w = len(_OPENING_WORDS)
    assert w > 300
    openings = [unique_opening(i, seed=7).split() for i in range(2 * w + 5)]
    assert len({o[0] for o in openings[:w]}) == w
    assert len({tuple(o) for o in openings}) == len(openings)
    assert all(openings[i][0] != openings[i + 1][0] for i in range(len(openings) - 1))
    assert unique_opening(3, seed=7) == unique_opening(3, seed=7) != unique_opening(3, seed=8)


async def test_exact_prompt_keeps_its_lead(tokenizer: Tokenizer) -> None:
    rng = random.Random(3)
    for n in (4, 17, 128):
        text = await exact_prompt(tokenizer, n, rng, lead="Tide harbour.")
        assert len(await tokenizer.encode(text)) == n
        assert text.startswith("Tide") and (n < 8 or text.startswith("Tide harbour."))


# -- through the load generator --------------------------------------------------------------
@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServerProcess]:
    with ScriptedServerProcess(busy=False) as srv:
        yield srv


async def test_sweep_prompts_all_open_differently(server: ScriptedServerProcess) -> None:
    """Without a tokenizer (approximate lengths) the prompts the server received, warm-ups and
    both sweep points included, open with different words."""
    async with httpx.AsyncClient() as client:
        await client.post(server.base_url + "/_log/clear")
        cfg = quiet_config(
            server.base_url,
            input_len=32,
            output_len=2,
            num_requests=6,
            warmup_requests=None,  # one per user
            extra_body={"scripted": {"ttft_ms": 1, "itl_ms": 1}},
        )
        results = await arun_sweep(cfg, concurrencies=[1, 3])
        log = (await client.get(server.base_url + "/_log")).json()
    heads = [entry["prompt_head"] for entry in log.values()]
    assert len(heads) == (1 + 6) + (3 + 6)  # warm-ups (one per user) + measured, per point
    assert len({h.split()[0] for h in heads}) == len(heads)
    assert all(r.metrics["completed"] == 6 for r in results)


async def test_input_tokens_are_the_client_side_length(server: ScriptedServerProcess) -> None:
    """Prompts built to 24 tokens report 24 input tokens although the server's usage says 1
    (as vLLM reports its dataset's prompt_len); without a tokenizer the server's count is used."""
    cfg = quiet_config(
        server.base_url,
        input_len=24,
        output_len=3,
        num_requests=3,
        use_server_tokenizer=True,
        extra_body={"scripted": {"ttft_ms": 1, "itl_ms": 1}},
    )
    exact = (await arun_benchmark(cfg, tokenizer=PieceTokenizer.words())).to_json()
    assert exact["input_lens_exact"] and exact["input_lens"] == [24, 24, 24]
    assert exact["total_input_tokens"] == 72
    assert [r["usage_prompt_tokens"] for r in exact["requests"]] == [1, 1, 1]  # kept raw
    cfg.use_server_tokenizer = False
    approx = (await arun_benchmark(cfg)).to_json()
    assert not approx["input_lens_exact"] and approx["input_lens"] == [1, 1, 1]


# -- end of generation -----------------------------------------------------------------------
class SpecialTokenizer:
    """A server-like tokenizer: BOS, control tokens that decode to nothing, one token per char."""

    SPECIALS = {"<bos>": 2, "<eos>": 1, "<end_of_turn>": 106, "<start_of_turn>": 105}

    async def encode(self, text: str) -> list[int]:
        ids = [2]
        while text:
            for name, tid in self.SPECIALS.items():
                if text.startswith(name):
                    ids.append(tid)
                    text = text[len(name) :]
                    break
            else:
                ids.append(1000 + ord(text[0]))
                text = text[1:]
        return ids

    async def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(i - 1000) for i in ids if i >= 1000)


async def test_detect_eog_tokens() -> None:
    found = await detect_eog_tokens(SpecialTokenizer(), ("<eos>", "<end_of_turn>", "<|im_end|>", "x"))
    # "<|im_end|>" is ordinary text here (9 tokens), "x" one ordinary token that decodes to "x".
    assert found == ("<eos>", "<end_of_turn>")
    real = real_tokenizer()
    if real is not None:  # the reference model: both of Gemma's end tokens (and its "</s>")
        assert {"<eos>", "<end_of_turn>"} <= set(await detect_eog_tokens(real))


async def test_llama_cpp_python_end_tokens_detected_for_a_base_url(server: ScriptedServerProcess) -> None:
    """``--base-url --engine llama-cpp-python`` without ``--eog-token``: the served model's end
    tokens are suppressed as ``--reference-engine`` does, not only ``<eos>`` (min_tokens)."""
    cfg = quiet_config(
        server.base_url,
        engine="llama-cpp-python",
        input_len=8,
        output_len=3,
        use_server_tokenizer=True,
        extra_body={"scripted": {"ttft_ms": 1, "itl_ms": 1}},
    )
    doc = (await arun_benchmark(cfg, tokenizer=SpecialTokenizer())).to_json()
    assert doc["eos_suppression"] == {
        "fields": ["logit_bias", "logit_bias_type"],
        "eog_tokens": ["<eos>", "<end_of_turn>"],
        "eog_source": "detected",
    }
    assert eos_suppression("llama-cpp-python", 3, doc["eos_suppression"]["eog_tokens"])["logit_bias"] == {
        "<eos>": -1e9,
        "<end_of_turn>": -1e9,
    }
    cfg.use_server_tokenizer = False  # nothing to ask: only <eos> can be masked, and it says so
    doc = (await arun_benchmark(cfg)).to_json()
    assert doc["eos_suppression"] == {"fields": ["min_tokens"], "eog_tokens": [], "eog_source": "none"}


async def test_short_outputs_are_reported(server: ScriptedServerProcess) -> None:
    specs = [
        RequestSpec("p", 4, 6, {"scripted": {"n_tokens": 6}}),  # ran to its length
        RequestSpec("p", 4, 6, {"scripted": {"n_tokens": 6, "usage_tokens": 4}}),  # usage: 2 short
        RequestSpec(
            "p", 4, 6, {"scripted": {"chunks": [" a", " b", {"finish_reason": "stop"}], "usage": False}}
        ),
    ]
    doc = (await arun_benchmark(quiet_config(server.base_url, num_requests=3), requests=specs)).to_json()
    assert doc["output_shortfalls"] == [0, 2, 4]  # the third stopped after 2 of 6 tokens
    assert doc["short_requests"] == 2 and doc["output_shortfall_tokens"] == 6
    assert doc["requested_output_lens"] == [6, 6, 6]
