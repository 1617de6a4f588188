"""Workloads with exact input and output lengths in tokens.

Prompts are cut from a small built-in corpus (sentences written for this project) to an exact
token count with the server's own tokenizer, so "ISL 128" means 128 tokens as the engine counts
them (specials such as BOS included, which is what the engine processes). The input length a
result reports is that client-side length, as vLLM reports its dataset's ``prompt_len``.

Every prompt of a run opens with two words that no other prompt of the run opens with
(``unique_opening``), so no two prompts share more than their specials and perhaps the first
piece of a word: an engine's prefix cache cannot reuse one prompt's tokens for another and turn
part of the benchmark into a cache test by accident. A shuffled corpus alone is not enough: two
prompts of a 100-prompt run often began with the same sentence or two. A workload that wants
shared prefixes on purpose (to measure prefix caching) asks for ``shared_prefix_len`` tokens
common to every prompt, followed by the unique opening.

Output length is fixed with ``max_tokens`` plus the engine's way of ignoring end-of-sequence:

* vLLM, SGLang and llama.cpp's own ``llama-server``: ``ignore_eos: true``.
* llama-cpp-python's server (``python -m llama_cpp.server``, read in its ``server/types.py`` and
  ``server/app.py``): no ``ignore_eos``. ``min_tokens`` installs a processor that masks only
  ``token_eos``; models with several end-of-generation tokens (Gemma 3 also stops on
  ``<end_of_turn>``) need ``logit_bias`` with ``logit_bias_type: "tokens"`` instead. The two must
  not be combined: ``Llama._create_completion`` does ``logits_processor =
  logits_processor.extend(...)``, which leaves ``None`` and silently drops both. The server does
  not say which tokens end generation, so ``detect_eog_tokens`` asks its tokenizer which of the
  usual end-of-generation texts are control tokens of the served model.
"""

from __future__ import annotations

import functools
import random
import re
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


# Opening words: the distinct words of four letters or more of the corpus, in corpus order.
_OPENING_WORDS: tuple[str, ...] = tuple(
    dict.fromkeys(w.lower() for sentence in CORPUS for w in re.findall(r"[A-Za-z]+", sentence) if len(w) >= 4)
)


@functools.lru_cache(maxsize=8)
def _opening_order(seed: int) -> tuple[str, ...]:
    words = list(_OPENING_WORDS)
    random.Random(f"opening-{seed}").shuffle(words)
    return tuple(words)


def unique_opening(index: int, seed: int = 0) -> str:
    """The two words that open prompt ``index`` of a run (``"Tide harbour."``).

    The first word is the index's last digit in base W (the number of opening words, over 300)
    and the second the next digit, over a word order shuffled by ``seed``: prompts whose indices
    differ by less than W open with different words, and any two of the first W squared prompts
    differ by the second word at the latest.
    """
    words = _opening_order(seed)
    base = len(words)
    first, second = words[index % base], words[(index // base) % base]
    return f"{first.capitalize()} {second}."


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


# End-of-generation token texts: those llama.cpp marks as end of generation by their text
# (llama-vocab.cpp) plus the usual end-of-sequence texts. A model has only some of them.
EOG_CANDIDATES: tuple[str, ...] = (
    "<eos>",
    "</s>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<EOT>",
    "<end_of_utterance>",
    "<\uff5cend\u2581of\u2581sentence\uff5c>",  # DeepSeek's full-width spelling
)


async def detect_eog_tokens(
    tokenizer: Tokenizer, candidates: Sequence[str] = EOG_CANDIDATES
) -> tuple[str, ...]:
    """The candidate texts that are one control token of the served model.

    A candidate counts when the tokenizer turns it into exactly one token beside the specials it
    adds to any text, and that token decodes to nothing: llama-cpp-python's ``/extras/tokenize``
    parses special tokens, and its ``/extras/detokenize`` does not render control tokens. A
    text the model does not have as a special token splits into several ordinary tokens and is
    left out, so ``logit_bias`` never suppresses ordinary text.
    """
    base = await tokenizer.encode("")
    found: list[str] = []
    for text in candidates:
        ids = await tokenizer.encode(text)
        if ids[: len(base)] != base or len(ids) != len(base) + 1:
            continue
        if await tokenizer.decode(ids[len(base) :]) == "":
            found.append(text)
    return tuple(found)


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


async def exact_prompt(tokenizer: Tokenizer, n_tokens: int, rng: random.Random, *, lead: str = "") -> str:
    """Text that ``tokenizer`` encodes to exactly ``n_tokens`` tokens (specials included).

    It starts with ``lead`` (cut short if ``lead`` alone is longer) followed by corpus text.
    """
    special = len(await tokenizer.encode(""))
    if n_tokens <= special:
        raise WorkloadError(f"input length {n_tokens} leaves no room beside {special} special tokens")
    body = _corpus_text(rng, n_tokens * 6 + 200)
    ids = (await tokenizer.encode(f"{lead} {body}" if lead else body))[special:]
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


def approx_prompt(n_tokens: int, rng: random.Random, *, lead: str = "") -> str:
    """Without a tokenizer: about 0.75 English words per token, starting with ``lead``."""
    words = (lead.split() if lead else []) + _corpus_text(rng, n_tokens * 8 + 100).split()
    return " ".join(words[: max(1, int(n_tokens * 0.75))])


@dataclass
class Workload:
    """Fixed input/output lengths; ``extra_body`` is merged into every request.

    ``shared_prefix_len``: tokens (after the tokenizer's specials) that every prompt starts
    with, on purpose, to measure prefix caching; 0 (the default) shares nothing.
    """

    input_len: int
    output_len: int
    num_requests: int
    seed: int = 0
    extra_body: dict[str, Any] | None = None
    shared_prefix_len: int = 0


async def build_requests(
    workload: Workload,
    tokenizer: Tokenizer | None,
    count: int | None = None,
    salt: int = 0,
    *,
    first_index: int = 0,
) -> tuple[list[RequestSpec], bool]:
    """Build ``count`` request specs (default ``workload.num_requests``).

    Returns the specs and whether input lengths are exact (a tokenizer was available).
    Request ``k`` opens with ``unique_opening(first_index + k)`` (after the shared prefix, if
    the workload asks for one), so give every batch of one run (warm-ups, sweep points) its own
    ``first_index`` range and no two prompts of the run share more than a token or two.
    """
    n = workload.num_requests if count is None else count
    rng = random.Random(workload.seed * 1_000_003 + salt)
    extra = dict(workload.extra_body or {})
    prefix = await _shared_prefix(workload, tokenizer)
    specs: list[RequestSpec] = []
    for k in range(n):
        opening = unique_opening(first_index + k, workload.seed)
        lead = f"{prefix} {opening}" if prefix else opening
        if tokenizer is not None:
            prompt = await exact_prompt(tokenizer, workload.input_len, rng, lead=lead)
        else:
            prompt = approx_prompt(workload.input_len, rng, lead=lead)
        specs.append(RequestSpec(prompt, workload.input_len, workload.output_len, extra))
    return specs, tokenizer is not None


async def _shared_prefix(workload: Workload, tokenizer: Tokenizer | None) -> str:
    """The text every prompt of ``workload`` starts with ("" unless it asks for one)."""
    n = workload.shared_prefix_len
    if n <= 0:
        return ""
    rng = random.Random(f"shared-prefix-{workload.seed}")
    special = len(await tokenizer.encode("")) if tokenizer is not None else 0
    if special + n >= workload.input_len:
        raise WorkloadError(
            f"shared prefix of {n} tokens leaves no room for the rest of a {workload.input_len}-token prompt"
        )
    if tokenizer is None:
        return approx_prompt(n, rng)
    return await exact_prompt(tokenizer, special + n, rng)
