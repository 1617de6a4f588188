"""SGLang `python -m sglang.bench_serving --output-file` JSONL: one JSON object per run.

Each line carries every argument of its run, whether the dataset used it or not (a sharegpt
run still says `random_input_len: 1024`), so a line's params are the ones its own dataset reads:
the `random_*` lengths and range ratio for the random datasets, `sharegpt_output_len` (when set)
for sharegpt. What the run actually sent is in the figures: the token totals and the mean
input and output lengths per completed request.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .base import ImportFormatError, ImportOutcome, merge_duplicates, num
from .records import Direction, FailureRecord, ResultRecord
from .serving import RUN_FIGURES, SUITE, compact, rate_param

_LATENCY = re.compile(r"^(mean|median|std|p\d+(?:\.\d+)?)_(e2e_latency|ttft|itl|tpot)_ms$")
_SHARED_WITH_VLLM = (
    "duration",
    "completed",
    "total_input_tokens",
    "total_output_tokens",
    "request_throughput",
    "output_throughput",
)
# Run-level figures: key -> (metric, unit, direction); vLLM's where both tools print one.
_FIGURES: dict[str, tuple[str, str, Direction]] = {
    **{key: RUN_FIGURES[key] for key in _SHARED_WITH_VLLM},
    "total_output_tokens_retokenized": ("total_output_tokens_retokenized", "tokens", "higher"),
    "input_throughput": ("input_throughput", "tok/s", "higher"),
    "total_throughput": RUN_FIGURES["total_token_throughput"],
    # SGLang's mean requests in flight (sum of E2E latencies / duration).
    "concurrency": ("mean_concurrency", "requests", "lower"),
    "accept_length": ("accept_length", "tokens", "higher"),
}
_SETTINGS = (
    "backend",
    "dataset_name",
    "request_rate",
    "max_concurrency",
    "sharegpt_output_len",
    "random_input_len",
    "random_output_len",
    "random_range_ratio",
)


def line_params(row: dict[str, Any]) -> dict[str, Any]:
    """The settings of one run, as its dataset used them."""
    dataset = row.get("dataset_name")
    params: dict[str, Any] = {
        "tool": "sglang-bench-serving",
        "backend": row.get("backend"),
        "model": row.get("model_id"),
        "dataset": dataset,
        "request_rate": rate_param(row.get("request_rate")),
        "max_concurrency": row.get("max_concurrency"),
    }
    if str(dataset).startswith("random"):
        params["input_len"] = row.get("random_input_len")
        params["output_len"] = row.get("random_output_len")
        params["range_ratio"] = row.get("random_range_ratio")
    elif dataset == "sharegpt":
        params["output_len"] = row.get("sharegpt_output_len")  # None: the dataset's own lengths
    return compact(params)


def _line_records(row: dict[str, Any], bench: str, params: dict[str, Any]) -> list[ResultRecord]:
    out = []
    for key, value in row.items():
        v = num(value)
        if v is None or key in _SETTINGS:
            continue
        if m := _LATENCY.match(key):
            metric = f"{m[1]}_{'e2el' if m[2] == 'e2e_latency' else m[2]}_ms"
            out.append(ResultRecord(SUITE, bench, metric, v, "ms", "lower", dict(params)))
        elif key in _FIGURES:
            metric, unit, direction = _FIGURES[key]
            out.append(ResultRecord(SUITE, bench, metric, v, unit, direction, dict(params)))
    completed, duration = num(row.get("completed")), num(row.get("duration"))
    if completed:
        for total, mean in (
            ("total_input_tokens", "mean_input_tokens"),
            ("total_output_tokens", "mean_output_tokens"),
        ):
            t = num(row.get(total))
            if t is not None:
                out.append(ResultRecord(SUITE, bench, mean, t / completed, "tokens", "higher", dict(params)))
        if duration and "request_throughput" not in row:
            # Older lines lack it; this is SGLang's own definition, completed / duration.
            out.append(
                ResultRecord(
                    SUITE, bench, "request_throughput", completed / duration, "req/s", "higher", dict(params)
                )
            )
    return out


def parse_sglang_jsonl(text: str, source_name: str | None) -> ImportOutcome:
    out = ImportOutcome()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ImportFormatError("empty SGLang JSONL")
    not_imported: set[str] = set()
    for i, line in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ImportFormatError(f"SGLang JSONL line {i + 1} is not JSON: {exc}") from exc
        if not isinstance(row, dict) or "output_throughput" not in row:
            raise ImportFormatError(f"SGLang JSONL line {i + 1} has no output_throughput")
        params = line_params(row)
        bench = f"sglang:{row.get('dataset_name') or 'unknown'}"
        if num(row.get("completed")) == 0:
            # A run that completed nothing prints zeros for its statistics: no results from it.
            out.failures.append(
                FailureRecord(SUITE, bench, "crash", "SGLang run completed no request", params)
            )
            continue
        out.results += _line_records(row, bench, params)
        not_imported |= {
            k for k, v in row.items() if num(v) is not None and k not in _SETTINGS and k not in _FIGURES
        } - {k for k in row if _LATENCY.match(k)}
    # A run repeated with the same settings is one result: the mean, each run a sample.
    out.results = merge_duplicates(out.results)
    out.meta = {"runs": len(lines)}
    if not_imported:
        out.meta["not_imported"] = ", ".join(sorted(not_imported))
    return out
