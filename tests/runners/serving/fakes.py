"""Test doubles shared by the serving tests: tokenizers and a quiet load-generator config."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from bench_runner.serving.loadgen import BenchConfig


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
