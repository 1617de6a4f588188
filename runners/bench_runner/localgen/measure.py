"""Local generation speed, as llama-bench and exo bench report it.

* prefill tok/s = prompt tokens / prefill seconds
* generation tok/s = (generated - 1) / (last token time - first token time)

Two ways to measure, for given prompt and generation lengths:

* ``server``: one streamed request at a time against a running OpenAI-compatible server;
  prefill seconds are the TTFT (which also holds one sampling step and the HTTP round trip);
* ``in-process``: ``llama_cpp.Llama`` in this process, timing the prompt evaluation and each
  generated token directly, with no HTTP in between.

Against a server every prompt opens with words no other prompt of the measurement opens with
(``serving.workload.unique_opening``): llama.cpp keeps the previous prompt's tokens and
evaluates only what follows the common prefix, so repeated prompts with a common beginning
would time a partial prefill and read as a faster one. ``first_index`` gives each pair of a sweep
its own openings. (In-process runs reset the model before every prompt.)

``bench-runner local-gen`` (`localgen.cli`) runs either from the command line.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ..records import ResultRecord
from ..serving.client import RequestOutput, RequestSpec, build_payload, send_request
from ..serving.workload import (
    CORPUS,
    ServerTokenizer,
    Tokenizer,
    approx_prompt,
    eos_suppression,
    exact_prompt,
    unique_opening,
)


@dataclass
class GenSample:
    """One measurement."""

    prompt_tokens: int
    generated_tokens: int
    prefill_s: float
    first_token_time: float
    last_token_time: float

    @property
    def prefill_tok_s(self) -> float:
        return self.prompt_tokens / self.prefill_s if self.prefill_s > 0 else math.nan

    @property
    def generation_tok_s(self) -> float:
        span = self.last_token_time - self.first_token_time
        if self.generated_tokens < 2 or span <= 0:
            return math.nan
        return (self.generated_tokens - 1) / span


@dataclass
class GenResult:
    """Repeated measurements for one (prompt length, generation length)."""

    mode: str
    prompt_len: int
    gen_len: int
    samples: list[GenSample] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        pp = [s.prefill_tok_s for s in self.samples if math.isfinite(s.prefill_tok_s)]
        tg = [s.generation_tok_s for s in self.samples if math.isfinite(s.generation_tok_s)]
        return {
            "mode": self.mode,
            "prompt_len": self.prompt_len,
            "gen_len": self.gen_len,
            "repetitions": len(self.samples),
            "prefill_tok_s": statistics.fmean(pp) if pp else None,
            "prefill_tok_s_std": statistics.pstdev(pp) if pp else None,
            "generation_tok_s": statistics.fmean(tg) if tg else None,
            "generation_tok_s_std": statistics.pstdev(tg) if tg else None,
            "generated_tokens": [s.generated_tokens for s in self.samples],
            "samples": [asdict(s) for s in self.samples],
        }

    def to_result_records(
        self, suite: str = "localgen", benchmark: str | None = None, params: dict[str, Any] | None = None
    ) -> list[ResultRecord]:
        s = self.summary()
        name = benchmark or f"pp{self.prompt_len}-tg{self.gen_len}"
        p = {"mode": self.mode, "pp": self.prompt_len, "tg": self.gen_len, **(params or {})}
        out = []
        for metric, key in (("prefill_tok_s", "prefill_tok_s"), ("generation_tok_s", "generation_tok_s")):
            if s[key] is None:
                continue
            values = [getattr(x, key) for x in self.samples]
            out.append(
                ResultRecord(
                    suite=suite,
                    benchmark=name,
                    metric=metric,
                    value=float(s[key]),
                    unit="tok/s",
                    direction="higher",
                    params=p,
                    samples=[v for v in values if math.isfinite(v)],
                    stats={"std": float(s[f"{key}_std"])},
                )
            )
        return out


# -- against a running server ------------------------------------------------------------------
def server_prompt_count(repetitions: int, warmup: bool = True) -> int:
    """How many prompts (openings) ``measure_server`` uses: the repetitions and the warm-up."""
    return repetitions + (1 if warmup else 0)


async def server_prompt(
    tokenizer: Tokenizer | None, prompt_len: int, index: int, rng: random.Random, seed: int = 0
) -> str:
    """Prompt ``index`` of a measurement: ``unique_opening(index, seed)``, then corpus text, to
    exactly ``prompt_len`` tokens with the server's tokenizer (about that many without one)."""
    lead = unique_opening(index, seed)
    if tokenizer is not None:
        return await exact_prompt(tokenizer, prompt_len, rng, lead=lead)
    return approx_prompt(prompt_len, rng, lead=lead)


async def measure_server(
    base_url: str,
    prompt_len: int,
    gen_len: int,
    *,
    repetitions: int = 3,
    model: str = "",
    engine: str = "generic",
    eog_tokens: Sequence[str] = (),
    seed: int = 0,
    warmup: bool = True,
    first_index: int = 0,
) -> GenResult:
    """Measure prefill and generation speed with streamed requests, one at a time.

    Prompt ``k`` opens with ``unique_opening(first_index + k, seed)``; give every call against
    the same server its own range (``server_prompt_count``) so that no two share a prefix."""
    base_url = base_url.rstrip("/")
    result = GenResult("server", prompt_len, gen_len)
    rng = random.Random(seed)
    extra = eos_suppression(engine, gen_len, eog_tokens)
    async with httpx.AsyncClient(timeout=httpx.Timeout(600.0, connect=30.0)) as client:
        tok = await ServerTokenizer.detect(client, base_url, model)
        url = base_url + "/v1/completions"
        for i in range(server_prompt_count(repetitions, warmup)):
            prompt = await server_prompt(tok, prompt_len, first_index + i, rng, seed)
            spec = RequestSpec(prompt, prompt_len, gen_len, extra)
            out = await send_request(
                client, url, build_payload("completions", model, spec), RequestOutput(i, prompt_len, gen_len)
            )
            if not out.success:
                raise RuntimeError(f"request failed: {out.error}")
            if warmup and i == 0:
                continue
            generated = out.output_tokens
            if out.output_tokens_source == "chunks" and tok is not None:
                generated = await tok.count_text(out.text)
            times = out.content_times
            first = out.first_nonempty_time or times[0]
            result.samples.append(GenSample(prompt_len, generated, out.ttft, first, times[-1]))
    return result


# -- in this process with llama_cpp.Llama -----------------------------------------------------
def measure_in_process(
    model_path: str | Path,
    prompt_len: int,
    gen_len: int,
    *,
    repetitions: int = 3,
    n_threads: int | None = None,
    n_ctx: int = 2048,
    seed: int = 0,
    warmup: bool = True,
    disable_amx: bool | None = None,
) -> GenResult:
    """Time prompt evaluation and token generation with ``llama_cpp.Llama`` directly.

    ``disable_amx`` (default: when the CPU advertises AMX, see ``engine.cpu_quirks``) installs the
    seccomp guard in this process before loading the model; it only refuses AMX permission.
    """
    from llama_cpp import Llama  # optional dependency (bench-runner[engine])

    from ..engine.cpu_quirks import deny_amx_permission, needs_amx_guard

    if disable_amx if disable_amx is not None else needs_amx_guard():
        deny_amx_permission()

    llm = Llama(
        model_path=str(model_path),
        n_ctx=max(n_ctx, prompt_len + gen_len + 8),
        n_threads=n_threads,
        n_threads_batch=n_threads,
        verbose=False,
        seed=seed,
    )
    rng = random.Random(seed)
    result = GenResult("in-process", prompt_len, gen_len)
    for i in range(repetitions + (1 if warmup else 0)):
        text = " ".join(rng.sample(CORPUS, len(CORPUS)) * (1 + prompt_len // 200))
        tokens = llm.tokenize(text.encode(), add_bos=True)[:prompt_len]
        if len(tokens) < prompt_len:
            raise ValueError(f"corpus too short for {prompt_len} tokens")
        llm.reset()  # type: ignore[no-untyped-call]  # llama_cpp leaves it unannotated
        t0 = time.perf_counter()
        times: list[float] = []
        # generate() evaluates the prompt, then yields one sampled token per step; the caller
        # decides when to stop, so the end-of-sequence token does not end the run early.
        for _tok in llm.generate(tokens, temp=0.0, reset=True):
            times.append(time.perf_counter())
            if len(times) >= gen_len:
                break
        if warmup and i == 0:
            continue
        result.samples.append(GenSample(prompt_len, len(times), times[0] - t0, times[0], times[-1]))
    return result
