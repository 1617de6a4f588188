"""LLMPerf (ray-project/llmperf `token_benchmark_ray.py`) summary JSON.

LLMPerf summarises each per-request series over the requests without an error code; its keys
are `results_<series>_<stat>` in seconds (or tokens, tok/s). Names here follow vLLM's where the
definitions agree (TTFT, E2EL, the run's output throughput). LLMPerf's `inter_token_latency_s`
is not vLLM's ITL: per request it is the sum of every chunk gap counted from the request's
start (so the TTFT is in it) divided by the output tokens, close to E2EL / tokens. It is stored
as `<stat>_e2el_per_output_token_ms`, never as an ITL.
"""

from __future__ import annotations

import ast
from typing import Any

from .base import ImportFormatError, ImportOutcome, num
from .records import Direction, ResultRecord
from .serving import SUITE, compact, request_failures

# LLMPerf stat suffix -> our stat prefix.
_STATS = {
    "mean": "mean",
    "quantiles_p25": "p25",
    "quantiles_p50": "median",
    "quantiles_p75": "p75",
    "quantiles_p90": "p90",
    "quantiles_p95": "p95",
    "quantiles_p99": "p99",
    "min": "min",
    "max": "max",
    "stddev": "std",
}
# LLMPerf per-request series -> (our metric name, scale to our unit, unit, direction).
_SERIES: dict[str, tuple[str, float, str, Direction]] = {
    "ttft_s": ("ttft_ms", 1000.0, "ms", "lower"),
    "end_to_end_latency_s": ("e2el_ms", 1000.0, "ms", "lower"),
    "inter_token_latency_s": ("e2el_per_output_token_ms", 1000.0, "ms", "lower"),
    "request_output_throughput_token_per_s": ("request_output_throughput", 1.0, "tok/s", "higher"),
    "number_input_tokens": ("input_tokens", 1.0, "tokens", "higher"),
    "number_output_tokens": ("output_tokens", 1.0, "tokens", "higher"),
}


def _error_codes(data: dict[str, Any]) -> list[str]:
    """The error code frequency LLMPerf writes as the str() of a dict, as lines."""
    raw = data.get("results_error_code_frequency")
    try:
        freq = ast.literal_eval(raw) if isinstance(raw, str) else raw
    except (ValueError, SyntaxError):
        return [str(raw)]
    return [f"{code}: {count}" for code, count in freq.items()] if isinstance(freq, dict) else []


def parse_llmperf_summary(data: dict[str, Any], source_name: str | None) -> ImportOutcome:
    if not any(k.startswith("results_") for k in data):
        raise ImportFormatError("not an LLMPerf summary (no results_* keys)")
    params = compact(
        {
            "tool": "llmperf",
            "framework": data.get("framework"),
            "input_tokens": num(data.get("mean_input_tokens")),
            "input_tokens_stddev": num(data.get("stddev_input_tokens")),
            "output_tokens": num(data.get("mean_output_tokens")),
            "output_tokens_stddev": num(data.get("stddev_output_tokens")),
            "concurrency": data.get("num_concurrent_requests"),
        }
    )
    bench = f"llmperf:{data.get('model', 'unknown')}"
    out = ImportOutcome()
    completed = num(data.get("results_num_completed_requests"))
    failed = num(data.get("results_number_errors"))
    out.failures = request_failures(bench, params, completed, failed, _error_codes(data), tool="LLMPerf")
    out.meta = {
        "name": data.get("name"),
        "timestamp": data.get("timestamp"),
        "requests_started": data.get("results_num_requests_started"),
    }
    if completed == 0:
        return out

    def add(metric: str, value: float | None, unit: str, direction: Direction) -> None:
        if value is not None:
            out.results.append(ResultRecord(SUITE, bench, metric, value, unit, direction, dict(params)))

    for series, (name, scale, unit, direction) in _SERIES.items():
        for suffix, stat in _STATS.items():
            v = num(data.get(f"results_{series}_{suffix}"))
            add(f"{stat}_{name}", None if v is None else v * scale, unit, direction)
    add("output_throughput", num(data.get("results_mean_output_throughput_token_per_s")), "tok/s", "higher")
    per_min = num(data.get("results_num_completed_requests_per_min"))
    add("request_throughput", None if per_min is None else per_min / 60.0, "req/s", "higher")
    add("completed", completed, "requests", "higher")
    add("failed_requests", failed, "requests", "lower")
    add("error_rate", num(data.get("results_error_rate")), "ratio", "lower")
    return out
