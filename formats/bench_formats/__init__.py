"""Other tools' benchmark outputs as ResultRecords / FailureRecords: the parsers that both the
server (`POST /api/v1/imports`) and the runner (`bench-runner import`) use.

    from bench_formats import parse, detect_format
    outcome = parse("auto", text, source_name="all_reduce.log")

Formats: nccl-tests, vllm (--save-result JSON, console block, or the nightly-benchmarks table),
sglang (bench_serving JSONL), llmperf (summary JSON), llama-bench (JSON, JSONL or markdown),
exo (bench JSON), mlx-lm (mlx_lm.benchmark output or mlx_lm.generate --verbose footer).
Input that is recognisably something else (asv histories, GitHub webhook payloads, documents,
CSV summaries, ...) is refused with an ImportFormatError that says what it is and why.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .base import ImportFormatError, ImportOutcome
from .unsupported import describe

FORMATS = ("nccl-tests", "vllm", "sglang", "llmperf", "llama-bench", "exo", "mlx-lm")
_ALIASES = {
    "nccl": "nccl-tests",
    "nccl_tests": "nccl-tests",
    "llama_bench": "llama-bench",
    "mlx": "mlx-lm",
    "mlx_lm": "mlx-lm",
    "vllm-bench": "vllm",
    "sglang-bench": "sglang",
    "exo-bench": "exo",
}


def _load_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _first_jsonl(text: str) -> dict[str, Any] | None:
    for line in text.splitlines():
        if line.strip():
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                return None
            return obj if isinstance(obj, dict) else None
    return None


def detect_format(text: str, filename: str | None = None) -> str:
    """Guess the format from the content (the file name only breaks ties)."""
    from .nccl_tests import looks_like

    stripped = text.lstrip()
    data = _load_json(stripped) if stripped[:1] in "[{" else None
    if data is not None and (reason := describe(stripped, filename)) is not None:
        raise ImportFormatError(f"not imported: {reason}")
    if isinstance(data, dict):
        if isinstance(data.get("requests"), list) and ("label" in data or "runs" in data):
            return "exo"
        if any(k.startswith("results_") for k in data):
            return "llmperf"
        if any(k in data for k in ("request_throughput", "mean_ttft_ms", "ttfts")):
            return "vllm"
        if "avg_ts" in data:
            return "llama-bench"
    if isinstance(data, list) and data and isinstance(data[0], dict):
        if "avg_ts" in data[0]:
            return "llama-bench"
        if "Test name" in data[0]:
            return "vllm"
    if data is None and stripped[:1] == "{":
        first = _first_jsonl(stripped)
        if first is not None:
            if "avg_ts" in first:
                return "llama-bench"
            if "output_throughput" in first and ("backend" in first or "median_ttft_ms" in first):
                return "sglang"
    if looks_like(text):
        return "nccl-tests"
    if "Serving Benchmark Result" in text:
        return "vllm"
    if "| test" in text and "t/s" in text and "| model" in text:
        return "llama-bench"
    if "prompt_tps=" in text or "tokens-per-sec" in text:
        return "mlx-lm"
    reason = describe(text, filename)
    if reason is not None:
        raise ImportFormatError(f"not imported: {reason}")
    name = (filename or "").lower()
    for fmt in FORMATS:
        if fmt.replace("-", "_") in name.replace("-", "_"):
            return fmt
    raise ImportFormatError(f"cannot tell the format of {filename or 'the input'}; pass one of {FORMATS}")


def _parse_json_doc(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFormatError(f"{what}: input is not JSON ({exc})") from exc


def _vllm(text: str, source_name: str | None) -> ImportOutcome:
    from .serving import parse_vllm_console, parse_vllm_json, parse_vllm_nightly_table

    if text.lstrip()[:1] in "[{":
        data = _parse_json_doc(text, "vllm")
        if isinstance(data, list):
            return parse_vllm_nightly_table(data, source_name)
        if not isinstance(data, dict):
            raise ImportFormatError("vllm: expected a JSON object or the nightly table's list of rows")
        return parse_vllm_json(data, source_name)
    return parse_vllm_console(text, source_name)


def _llmperf(text: str, source_name: str | None) -> ImportOutcome:
    from .llmperf import parse_llmperf_summary

    data = _parse_json_doc(text, "llmperf")
    if not isinstance(data, dict):
        raise ImportFormatError("llmperf: expected the summary JSON object")
    return parse_llmperf_summary(data, source_name)


def _exo(text: str, source_name: str | None) -> ImportOutcome:
    from .localgen import parse_exo

    data = _parse_json_doc(text, "exo")
    if not isinstance(data, dict):
        raise ImportFormatError("exo: expected a JSON object")
    return parse_exo(data, source_name)


def _parsers() -> dict[str, Callable[[str, str | None], ImportOutcome]]:
    from . import nccl_tests
    from .localgen import parse_llama_bench, parse_mlx_lm
    from .sglang import parse_sglang_jsonl

    return {
        "nccl-tests": nccl_tests.parse,
        "vllm": _vllm,
        "sglang": parse_sglang_jsonl,
        "llmperf": _llmperf,
        "llama-bench": parse_llama_bench,
        "exo": _exo,
        "mlx-lm": parse_mlx_lm,
    }


def parse(fmt: str, text: str, *, source_name: str | None = None) -> ImportOutcome:
    """Parse `text` in format `fmt` ("auto" to detect). Raises ImportFormatError when it cannot."""
    if not isinstance(text, str) or not text.strip():
        raise ImportFormatError("empty input")
    fmt = _ALIASES.get(fmt, fmt)
    if fmt == "auto":
        fmt = detect_format(text, source_name)
    parsers = _parsers()
    if fmt not in parsers:
        raise ImportFormatError(f"unknown format {fmt!r}; one of {FORMATS} or 'auto'")
    try:
        outcome = parsers[fmt](text, source_name)
        if not outcome.results and not outcome.failures:
            raise ImportFormatError(f"{fmt}: no results found in {source_name or 'input'}")
    except ImportFormatError as exc:
        # Something a detector took for a tool's output (a document quoting it, say) and the
        # parser then could not read: say what the input is, when we can tell.
        reason = describe(text, source_name)
        if reason is None:
            raise
        raise ImportFormatError(f"not imported: {reason} (read as {fmt}: {exc.message})") from exc
    except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        raise ImportFormatError(f"{fmt}: could not parse {source_name or 'input'}: {exc}") from exc
    outcome.meta = {"format": fmt, "source_name": source_name, **outcome.meta}
    return outcome


__all__ = ["FORMATS", "ImportFormatError", "ImportOutcome", "detect_format", "parse"]
