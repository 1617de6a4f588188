"""Workloads with exact input and output lengths in tokens.

Prompts are cut from a small built-in corpus (sentences written for this project) to an exact
token count with the server's own tokenizer, so "ISL 128" means 128 tokens as the engine counts
them (specials such as BOS included, which is what the engine processes). Output length is
fixed with ``max_tokens`` plus the engine's way of ignoring end-of-sequence:

* vLLM, SGLang and llama.cpp's own ``llama-server``: ``ignore_eos: true``.
* llama-cpp-python's server (``python -m llama_cpp.server``, read in its ``server/types.py`` and
  ``server/app.py``): no ``ignore_eos``. ``min_tokens`` installs a processor that masks only
  ``token_eos``; models with several end-of-generation tokens (Gemma 3 also stops on
  ``<end_of_turn>``) need ``logit_bias`` with ``logit_bias_type: "tokens"`` instead. The two must
  not be combined: ``Llama._create_completion`` does ``logits_processor =
  logits_processor.extend(...)``, which leaves ``None`` and silently drops both.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from .client import RequestSpec

# Original sentences (not from any dataset) on varied topics, so prompts read like real text.
CORPUS: tuple[str, ...] = (
    "The harbour master checked the tide tables twice before letting the ferry leave at dawn.",
    "A good sourdough starter needs flour, water, patience and a kitchen that is not too cold.",
    "Our team moved the nightly build to a faster machine and the test suite finished in half the time.",
    "When the river froze, the children tied their skates with string and raced to the old mill.",
    "The museum's new wing displays maps drawn by sailors who never saw the coasts they described.",
    "Batteries lose capacity faster when they are stored fully charged in a warm room.",
    "She wrote the first chapter on the train and rewrote it every evening for a month.",
    "The committee agreed to publish the budget online, including every line item over a thousand euros.",
    "Most of the orchard's apples were picked by hand, then sorted by size on a long wooden table.",
    "A distributed system is only as reliable as the slowest node it waits for.",
    "He learned to read weather from the clouds long before he owned a barometer.",
    "The library extended its opening hours after students complained about the exam season.",
    "Tomatoes ripen best on the vine, but they keep ripening for days after they are picked.",
    "The new bridge uses cables anchored deep in the rock on both sides of the valley.",
    "Every Friday the bakery sold out of rye bread before nine in the morning.",
    "Measuring latency at the client includes the network, the queue and the time to parse the reply.",
    "The village choir practised in the school hall because the church roof was being repaired.",
    "An old lighthouse keeper kept a diary of every storm that passed the headland for forty years.",
    "Compilers turn readable source code into instructions that a processor can execute quickly.",
    "The hikers reached the ridge at noon and shared a thermos of sweet tea in the wind.",
    "A careful reviewer reads the tests first, because they show what the author meant to build.",
    "The city planted lime trees along the avenue to give shade during the long summer afternoons.",
    "Her grandmother's recipe called for a handful of this and a pinch of that, never exact amounts.",
    "Solar panels on the warehouse roof now cover most of the building's daytime electricity use.",
    "The chess club meets on Tuesdays, and newcomers are paired with someone who explains each move.",
    "Fresh snow absorbs sound, which is why a winter forest feels so quiet after a storm.",
    "The engineers replaced a noisy fan, and the server room became quiet enough for a phone call.",
    "Each spring the storks return to the same chimney on the town hall, to the mayor's delight.",
    "Good documentation answers the question a new user will ask before they know how to ask it.",
    "The market stall sold honey from three different valleys, each with its own colour and taste.",
    "A slow query often hides a missing index, an unexpected join or a table that grew tenfold.",
    "The orchestra tuned to the oboe, as orchestras have done for more than two hundred years.",
    "After the flood, volunteers dried thousands of archive pages on lines strung across the gym.",
    "The bus route was changed so that it stops at the hospital entrance instead of the car park.",
    "Wind turbines are turned away from the wind in a storm so their blades are not damaged.",
    "The professor asked each student to explain the proof aloud before writing it on the board.",
    "Caching the model weights in memory shortened the first request from seconds to milliseconds.",
    "Along the canal, house boats are painted in bright colours and decorated with flower boxes.",
    "A map of the old mine shafts helped the builders avoid a collapse under the new school.",
    "The night train crosses the border after midnight, and the guard checks tickets with a torch.",
)


class Tokenizer(Protocol):
    """What workload building needs from a tokenizer (counts include added specials like BOS)."""

    async def encode(self, text: str) -> list[int]: ...

    async def decode(self, ids: Sequence[int]) -> str: ...


class WorkloadError(RuntimeError):
    """A workload could not be built as asked (e.g. exact token count unreachable)."""


@dataclass
class ServerTokenizer:
    """Tokenize with the serving engine's own HTTP endpoints.

    Flavours (request and response shapes checked against each server's source):
    ``llama-cpp-python``: POST /extras/tokenize {"input"} -> {"tokens"} (adds BOS, special=True),
    /extras/detokenize {"tokens"} -> {"text"}; ``vllm``: POST /tokenize {"model", "prompt"} ->
    {"tokens", "count"}, /detokenize {"model", "tokens"} -> {"prompt"}; ``llama.cpp``
    (llama-server): POST /tokenize {"content", "add_special"} -> {"tokens"}, /detokenize
    {"tokens"} -> {"content"}.
    """

    client: httpx.AsyncClient
    base_url: str
    flavour: str
    model: str = ""

    async def encode(self, text: str) -> list[int]:
        if self.flavour == "llama-cpp-python":
            body: dict[str, Any] = {"input": text}
            path = "/extras/tokenize"
        elif self.flavour == "vllm":
            body, path = {"model": self.model, "prompt": text}, "/tokenize"
        else:
            body, path = {"content": text, "add_special": True}, "/tokenize"
        resp = await self.client.post(self.base_url + path, json=body)
        resp.raise_for_status()
        return [int(t) for t in resp.json()["tokens"]]

    async def decode(self, ids: Sequence[int]) -> str:
        if self.flavour == "llama-cpp-python":
            resp = await self.client.post(self.base_url + "/extras/detokenize", json={"tokens": list(ids)})
            resp.raise_for_status()
            return str(resp.json()["text"])
        if self.flavour == "vllm":
            resp = await self.client.post(
                self.base_url + "/detokenize", json={"model": self.model, "tokens": list(ids)}
            )
            resp.raise_for_status()
            return str(resp.json()["prompt"])
        resp = await self.client.post(self.base_url + "/detokenize", json={"tokens": list(ids)})
        resp.raise_for_status()
        return str(resp.json()["content"])

    @classmethod
    async def detect(
        cls, client: httpx.AsyncClient, base_url: str, model: str = ""
    ) -> ServerTokenizer | None:
        """Probe the server's tokenize endpoints; None when it has none."""
        probes: list[tuple[str, str, dict[str, Any]]] = [
            ("llama-cpp-python", "/extras/tokenize", {"input": "hello"}),
            ("vllm", "/tokenize", {"model": model, "prompt": "hello"}),
            ("llama.cpp", "/tokenize", {"content": "hello", "add_special": True}),
        ]
        for flavour, path, body in probes:
            try:
                resp = await client.post(base_url + path, json=body)
            except httpx.HTTPError:
                continue
            if resp.status_code == 200:
                try:
                    tokens = resp.json().get("tokens")
                except ValueError:
                    continue
                if isinstance(tokens, list) and tokens:
                    return cls(client, base_url, flavour, model)
        return None

    async def count_text(self, text: str) -> int:
        """Tokens in generated text, without the specials the tokenizer adds to any input."""
        return len(await self.encode(text)) - len(await self.encode(""))


def eos_suppression(engine: str, output_len: int, eog_tokens: Sequence[str] = ()) -> dict[str, Any]:
    """Request fields that make ``engine`` generate exactly ``max_tokens`` tokens."""
    if engine == "llama-cpp-python":
        if eog_tokens:
            return {"logit_bias": {t: -1.0e9 for t in eog_tokens}, "logit_bias_type": "tokens"}
        return {"min_tokens": output_len}
    if engine in ("vllm", "sglang", "llama.cpp"):
        return {"ignore_eos": True}
    return {}


def _corpus_text(rng: random.Random, approx_chars: int) -> str:
    order = list(CORPUS)
    rng.shuffle(order)
    parts: list[str] = []
    size = 0
    while size < approx_chars:
        for sentence in order:
            parts.append(sentence)
            size += len(sentence) + 1
            if size >= approx_chars:
                break
        rng.shuffle(order)
    return " ".join(parts)


async def exact_prompt(tokenizer: Tokenizer, n_tokens: int, rng: random.Random) -> str:
    """Text that ``tokenizer`` encodes to exactly ``n_tokens`` tokens (specials included)."""
    special = len(await tokenizer.encode(""))
    if n_tokens <= special:
        raise WorkloadError(f"input length {n_tokens} leaves no room beside {special} special tokens")
    ids = (await tokenizer.encode(_corpus_text(rng, n_tokens * 6 + 200)))[special:]
    want = n_tokens - special
    if len(ids) < want:
        raise WorkloadError(f"corpus too short for {n_tokens} tokens")
    k = want
    for _ in range(10):
        text = await tokenizer.decode(ids[:k])
        got = len(await tokenizer.encode(text))
        if got == n_tokens:
            return text
        k = max(1, min(len(ids), k + (n_tokens - got)))
    # Detokenise/retokenise did not converge (token merges at the cut); trim by characters.
    while text:
        text = text[:-1]
        if len(await tokenizer.encode(text)) == n_tokens:
            return text
    raise WorkloadError(f"could not build a prompt of exactly {n_tokens} tokens")


def approx_prompt(n_tokens: int, rng: random.Random) -> str:
    """Without a tokenizer: about 0.75 English words per token."""
    words = _corpus_text(rng, n_tokens * 8 + 100).split()
    return " ".join(words[: max(1, int(n_tokens * 0.75))])


@dataclass
class Workload:
    """Fixed input/output lengths; ``extra_body`` is merged into every request."""

    input_len: int
    output_len: int
    num_requests: int
    seed: int = 0
    extra_body: dict[str, Any] | None = None


async def build_requests(
    workload: Workload, tokenizer: Tokenizer | None, count: int | None = None, salt: int = 0
) -> tuple[list[RequestSpec], bool]:
    """Build ``count`` request specs (default ``workload.num_requests``).

    Returns the specs and whether input lengths are exact (a tokenizer was available).
    Prompts differ from each other (shuffled corpus per request), so an engine's prefix cache
    does not turn the benchmark into a cache test.
    """
    n = workload.num_requests if count is None else count
    rng = random.Random(workload.seed * 1_000_003 + salt)
    extra = dict(workload.extra_body or {})
    specs: list[RequestSpec] = []
    for _ in range(n):
        if tokenizer is not None:
            prompt = await exact_prompt(tokenizer, workload.input_len, rng)
        else:
            prompt = approx_prompt(workload.input_len, rng)
        specs.append(RequestSpec(prompt, workload.input_len, workload.output_len, extra))
    return specs, tokenizer is not None
