"""Test doubles shared by the serving and local-gen tests: tokenizers, the shared-prefix check,
a quiet load-generator config."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from bench_runner.serving.loadgen import BenchConfig
from bench_runner.serving.workload import Tokenizer


class PieceTokenizer:
    """BOS (id 1) + one token per piece of the text; ``decode`` joins the pieces back.

    ``PieceTokenizer.pairs()`` cuts every two characters, so cuts do not round-trip trivially;
    ``PieceTokenizer.words()`` cuts at whitespace, so shared leading tokens are shared words.
    """

    def __init__(self, pattern: str, joiner: str) -> None:
        self.pattern = re.compile(pattern, re.DOTALL)
        self.joiner = joiner
        self.vocab: dict[str, int] = {}
        self.inv: dict[int, str] = {}

    @classmethod
    def pairs(cls) -> PieceTokenizer:
        return cls(r"..?", "")

    @classmethod
    def words(cls) -> PieceTokenizer:
        return cls(r"\S+", " ")

    async def encode(self, text: str) -> list[int]:
        ids = [1]
        for piece in self.pattern.findall(text):
            if piece not in self.vocab:
                self.vocab[piece] = len(self.vocab) + 2
                self.inv[self.vocab[piece]] = piece
            ids.append(self.vocab[piece])
        return ids

    async def decode(self, ids: Sequence[int]) -> str:
        return self.joiner.join(self.inv[i] for i in ids if i in self.inv)


def quiet_config(base_url: str, **overrides: Any) -> BenchConfig:
    """One request, no warm-up, no progress lines, no tokenizer probing; ``overrides`` win."""
    fields: dict[str, Any] = {
        "num_requests": 1,
        "progress": False,
        "use_server_tokenizer": False,
        "warmup_requests": 0,
    }
    fields.update(overrides)
    return BenchConfig(base_url=base_url, **fields)


FEW = 2  # leading tokens two prompts may share beyond the specials: a word's first piece


class GGUFTokenizer:
    """The reference model's tokenizer, called as llama-cpp-python's /extras endpoints call it."""

    def __init__(self, llama: Any) -> None:
        self.llama = llama

    async def encode(self, text: str) -> list[int]:
        return [int(t) for t in self.llama.tokenize(text.encode("utf-8"), special=True)]

    async def decode(self, ids: Sequence[int]) -> str:
        return str(self.llama.detokenize(list(ids)).decode("utf-8"))


def real_tokenizer() -> GGUFTokenizer | None:
    """The reference model's tokenizer where llama-cpp-python and the model are installed."""
    try:
        from bench_runner.engine.reference import reference_model_path
        from llama_cpp import Llama
    except ImportError:
        return None
    try:
        path = reference_model_path()
    except (RuntimeError, FileNotFoundError, OSError):
        return None
    return GGUFTokenizer(Llama(str(path), vocab_only=True, verbose=False))


async def max_shared_leading(tok: Tokenizer, prompts: Sequence[str]) -> int:
    """The most leading tokens, beyond the specials, that any two of ``prompts`` share."""
    special = len(await tok.encode(""))
    seqs = sorted([tuple(await tok.encode(p))[special:] for p in prompts])
    best = 0
    for a, b in zip(seqs, seqs[1:], strict=False):  # the longest common prefix is between neighbours
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        best = max(best, n)
    return best
