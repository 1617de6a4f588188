"""Local-gen against a server: no prompt shares a beginning with another, so llama.cpp cannot
evaluate only the tail of a repeated prompt and report a prefill faster than it is.

The token-level check uses the reference model's tokenizer where it is installed (a word-level
one otherwise); the request-level checks go through the scripted SSE server, which logs the
start of every prompt it received.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from bench_runner.localgen.measure import measure_server, server_prompt, server_prompt_count
from bench_runner.serving.scripted_server import ScriptedServerProcess
from bench_runner.serving.workload import Tokenizer, unique_opening
from bench_runner.suite import load_suite

from ..kinds.conftest import run, write_suite
from ..serving.fakes import FEW, PieceTokenizer, max_shared_leading, real_tokenizer


@pytest.fixture(scope="module")
def tokenizer() -> Iterator[Tokenizer]:
    yield real_tokenizer() or PieceTokenizer.words()


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedServerProcess]:
    with ScriptedServerProcess(busy=False) as srv:
        yield srv


async def test_consecutive_prompts_share_no_more_than_a_few_leading_tokens(tokenizer: Tokenizer) -> None:
    """Three pairs of a sweep, each with its warm-up and three repetitions, built as
    `measure_server` builds them (one rng per call, openings from the pair's first index)."""
    prompts: list[str] = []
    per_pair = server_prompt_count(3)
    for pair, prompt_len in enumerate((64, 128, 128)):
        rng = random.Random(0)  # every call starts its rng from the seed
        for k in range(per_pair):
            prompts.append(await server_prompt(tokenizer, prompt_len, pair * per_pair + k, rng, seed=0))
    assert len(set(prompts)) == len(prompts) == 12
    assert await max_shared_leading(tokenizer, prompts) <= FEW
    # neighbours in time, the pairs a prefix cache would see, most of all
    for a, b in zip(prompts, prompts[1:], strict=False):
        assert await max_shared_leading(tokenizer, [a, b]) <= FEW
    for prompt, prompt_len in zip(prompts, [64] * 4 + [128] * 8, strict=True):
        assert len(await tokenizer.encode(prompt)) == prompt_len  # still exact, specials included


async def test_every_request_opens_with_its_own_words(scripted: ScriptedServerProcess) -> None:
    async with httpx.AsyncClient() as client:
        await client.post(scripted.base_url + "/_log/clear")
    result = await measure_server(scripted.base_url, 32, 4, repetitions=3, seed=5, first_index=8)
    assert [s.generated_tokens for s in result.samples] == [4, 4, 4]  # the warm-up is not kept
    async with httpx.AsyncClient() as client:
        log = (await client.get(scripted.base_url + "/_log")).json()
    heads = [log[key]["prompt_head"] for key in sorted(log, key=int)]
    assert len(heads) == 4
    for k, head in enumerate(heads):
        assert head.startswith(unique_opening(8 + k, seed=5) + " ")


def test_the_pairs_of_a_local_gen_sweep_open_differently(
    scripted: ScriptedServerProcess, tmp_path: Path
) -> None:
    httpx.post(scripted.base_url + "/_log/clear", timeout=5)
    suite = load_suite(
        write_suite(
            tmp_path,
            f"""
            name = "gen"
            [[benchmark]]
            name = "pp"
            kind = "local-gen"
            base_url = "{scripted.base_url}"
            repetitions = 2
            [benchmark.params]
            prompt_len = [16, 16]
            gen_len = [4, 8]
            """,
        )
    )
    out = run(suite, tmp_path)
    assert out.failures == [], out.log
    assert len([r for r in out.results if r.metric == "prefill_tok_s"]) == 4
    log = httpx.get(scripted.base_url + "/_log", timeout=5).json()
    heads = [log[key]["prompt_head"] for key in sorted(log, key=int)]
    assert len(heads) == 4 * server_prompt_count(2)  # 4 pairs, 3 prompts each
    assert [h.split(".")[0] for h in heads] == [unique_opening(i).rstrip(".") for i in range(12)]
