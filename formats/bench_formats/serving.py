"""vLLM serving benchmark outputs: the `--save-result` JSON, the console block, and the
nightly-benchmarks summary table. Metric names follow vLLM's result JSON.

What a failed request contributes: nothing to any value or sample array. vLLM writes an entry
for every request in its per-request arrays, a failed one included (TTFT 0.0, no gaps, output
length 0, a non-empty `errors` entry); those entries are skipped. The count of failed requests
is the `failed_requests` record; a run in which some request failed also gives a `crash`
FailureRecord (as our own serving benchmark does by default), and a run in which none completed
gives that failure and no results (vLLM prints zeros for its statistics then).
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from typing import Any

from .base import ImportFormatError, ImportOutcome, num
from .records import Direction, FailureRecord, ResultRecord

SUITE = "serving"

# vLLM's per-request statistics: {mean,median,std,p<N>}_<metric>_ms.
_LAT_NAMES = ("ttft", "tpot", "itl", "e2el", "client_queue_time", "e2el_including_client_queue")
_LAT = re.compile(rf"^(mean|median|std|p\d+(?:\.\d+)?)_({'|'.join(_LAT_NAMES)})_ms$")

# Run-level figures of vLLM's result JSON: key -> (metric, unit, direction).
RUN_FIGURES: dict[str, tuple[str, str, Direction]] = {
    "duration": ("duration", "s", "lower"),
    "completed": ("completed", "requests", "higher"),
    "failed": ("failed_requests", "requests", "lower"),
    "total_input_tokens": ("total_input_tokens", "tokens", "higher"),
    "total_output_tokens": ("total_output_tokens", "tokens", "higher"),
    "request_throughput": ("request_throughput", "req/s", "higher"),
    "request_goodput": ("request_goodput", "req/s", "higher"),
    "output_throughput": ("output_throughput", "tok/s", "higher"),
    "total_token_throughput": ("total_token_throughput", "tok/s", "higher"),
    "max_output_tokens_per_s": ("max_output_tokens_per_s", "tok/s", "higher"),
    # Peak requests in flight: at a given offered load it grows with latency (Little's law).
    "max_concurrent_requests": ("max_concurrent_requests", "requests", "lower"),
}


def rate_param(value: Any) -> Any:
    """A request rate as a number, or "inf" for an unlimited one."""
    v = num(value)
    if v is None:
        return "inf" if str(value).lower() == "inf" else value
    return v


def compact(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def request_failures(
    bench: str,
    params: dict[str, Any],
    completed: float | None,
    failed: float | None,
    errors: Sequence[Any] = (),
    tool: str = "vLLM",
) -> list[FailureRecord]:
    """The FailureRecord a run with failed requests gives (none when every request completed)."""
    excerpt = "\n".join(str(e) for e in list(errors)[:20]) or None
    first = f": {errors[0]}" if errors else ""
    if completed == 0:
        what = f" ({failed:g} failed)" if failed else ""
        msg = f"{tool} benchmark completed no request{what}{first}"
        return [FailureRecord(SUITE, bench, "crash", msg[:2000], dict(params), excerpt)]
    if failed:
        total = (completed or 0) + failed
        msg = f"{failed:g} of {total:g} requests failed{first}"
        return [FailureRecord(SUITE, bench, "crash", msg[:2000], dict(params), excerpt)]
    return []


# ------------------------------------------------------------------------------ result JSON


def _succeeded(data: dict[str, Any], n: int) -> list[bool]:
    """Which of the n per-request entries are successful requests."""
    errors, out_lens = data.get("errors"), data.get("output_lens")
    ok = []
    for i in range(n):
        if isinstance(errors, list) and i < len(errors):
            ok.append(not errors[i])
        elif isinstance(out_lens, list) and i < len(out_lens):
            ok.append(bool(out_lens[i]))
        else:
            ok.append(True)
    return ok


def per_request_samples(data: dict[str, Any]) -> dict[str, list[float]]:
    """Per-request TTFT, TPOT and E2EL in ms from a result file's arrays, successful requests only.

    E2EL is vLLM's `latencies` entry where the file has it; older files store only TTFT and
    the gaps, so it is TTFT + sum(gaps) there (equal up to float rounding).
    """
    ttfts = data.get("ttfts") or []
    itls = data.get("itls") or []
    out_lens = data.get("output_lens") or []
    latencies = data.get("latencies") or []
    out: dict[str, list[float]] = {"ttft": [], "tpot": [], "e2el": []}
    for i, ok in enumerate(_succeeded(data, len(ttfts))):
        ttft = num(ttfts[i])
        if not ok or ttft is None:
            continue
        gaps = itls[i] if i < len(itls) and isinstance(itls[i], list) else []
        lat = num(latencies[i]) if i < len(latencies) else None
        e2el = lat if lat is not None else ttft + math.fsum(float(g) for g in gaps)
        out["ttft"].append(ttft * 1000)
        out["e2el"].append(e2el * 1000)
        n = out_lens[i] if i < len(out_lens) else 0
        if isinstance(n, int) and n > 1:
            out["tpot"].append((e2el - ttft) / (n - 1) * 1000)
    return out


def _failed_count(data: dict[str, Any]) -> float | None:
    failed = num(data.get("failed"))
    if failed is not None:
        return failed
    errors = data.get("errors")
    return float(sum(1 for e in errors if e)) if isinstance(errors, list) else None


def parse_vllm_json(data: dict[str, Any], source_name: str | None) -> ImportOutcome:
    if not any(k in data for k in ("request_throughput", "mean_ttft_ms", "completed")):
        raise ImportFormatError("not a vLLM result JSON (no request_throughput / mean_ttft_ms)")
    bench = f"vllm:{data.get('model_id') or 'unknown'}"
    params = compact(
        {
            "tool": "vllm-bench-serve",
            "backend": data.get("backend"),
            "model": data.get("model_id"),
            "num_prompts": data.get("num_prompts"),
            "request_rate": rate_param(data.get("request_rate")),
            "burstiness": data.get("burstiness"),
            "max_concurrency": data.get("max_concurrency"),
        }
    )
    out = ImportOutcome()
    completed, failed = num(data.get("completed")), _failed_count(data)
    errors = [e for e in data.get("errors") or [] if e]
    out.failures = request_failures(bench, params, completed, failed, errors)
    out.meta = {"date": data.get("date"), "model": data.get("model_id")}
    if completed == 0:
        return out  # vLLM's statistics of zero requests are zeros, not measurements
    samples = per_request_samples(data)
    figures = {**data, "failed": failed}
    for key, value in figures.items():
        key_clean = key.rstrip(":")  # vLLM writes the odd key "request_goodput:"
        v = num(value)
        if v is None:
            continue
        if m := _LAT.match(key_clean):
            attach = samples.get(m[2]) if m[1] == "mean" else None
            out.results.append(
                ResultRecord(SUITE, bench, key_clean, v, "ms", "lower", dict(params), samples=attach or None)
            )
        elif key_clean in RUN_FIGURES:
            metric, unit, direction = RUN_FIGURES[key_clean]
            out.results.append(ResultRecord(SUITE, bench, metric, v, unit, direction, dict(params)))
    if samples["ttft"]:
        recomputed = {
            "mean_ttft_ms": statistics.fmean(samples["ttft"]),
            "median_ttft_ms": statistics.median(samples["ttft"]),
        }
        if samples["tpot"]:
            recomputed["mean_tpot_ms"] = statistics.fmean(samples["tpot"])
        out.meta["recomputed"] = recomputed
    return out


# ---------------------------------------------------------------------------------- console

_CONSOLE = re.compile(r"^(?P<label>[A-Za-z][^:]*?):\s+(?P<value>[-+0-9.eE]+|inf)\s*$")
# Console label (lower case) -> the result JSON key it prints.
_CONSOLE_KEYS = {
    "successful requests": "completed",
    "failed requests": "failed",
    "benchmark duration (s)": "duration",
    "total input tokens": "total_input_tokens",
    "total generated tokens": "total_output_tokens",
    "request throughput (req/s)": "request_throughput",
    "request goodput (req/s)": "request_goodput",
    "output token throughput (tok/s)": "output_throughput",
    "peak output token throughput (tok/s)": "max_output_tokens_per_s",
    "peak concurrent requests": "max_concurrent_requests",
    "total token throughput (tok/s)": "total_token_throughput",
}
_CONSOLE_PARAMS = {
    "maximum request concurrency": "max_concurrency",
    "request rate configured (rps)": "request_rate",
    "traffic request rate": "request_rate",
}
_CONSOLE_STAT = re.compile(r"^(Mean|Median|Std|P(\d+(?:\.\d+)?))\s+(.+?)\s+\(ms\)$")
_CONSOLE_STAT_NAMES = {
    "ttft": "ttft",
    "tpot": "tpot",
    "itl": "itl",
    "e2el": "e2el",
    "client queue time": "client_queue_time",
    "e2el incl. client queue": "e2el_including_client_queue",
}
_RESULT_HEADER = "Serving Benchmark Result"


def _console_block(lines: list[str]) -> tuple[dict[str, float], dict[str, Any]]:
    """The figures (result JSON keys) and params that one console block prints."""
    figures: dict[str, float] = {}
    params: dict[str, Any] = {}
    for line in lines:
        m = _CONSOLE.match(line.strip())
        if not m:
            continue
        label, value = m["label"].strip(), float(m["value"])
        low = label.lower()
        if low in _CONSOLE_KEYS:
            figures[_CONSOLE_KEYS[low]] = value
        elif low in _CONSOLE_PARAMS:
            params[_CONSOLE_PARAMS[low]] = rate_param(m["value"]) if "rate" in low else int(value)
        elif sm := _CONSOLE_STAT.match(label):
            name = _CONSOLE_STAT_NAMES.get(sm[3].lower())
            if name is not None:
                stat = f"p{sm[2]}" if sm[2] else sm[1].lower()
                figures[f"{stat}_{name}_ms"] = value
    return figures, params


def _block_end(lines: list[str], start: int) -> int:
    """The index after a block's closing rule of '=' (or the end of the text)."""
    for i in range(start + 1, len(lines)):
        rule = lines[i].strip()
        if len(rule) >= 10 and set(rule) == {"="}:
            return i + 1
        if _RESULT_HEADER in lines[i]:
            return i
    return len(lines)


def parse_vllm_console(text: str, source_name: str | None) -> ImportOutcome:
    """One run per `Serving Benchmark Result` block; the settings vLLM prints before a block
    (request rate, maximum concurrency) are its params."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if _RESULT_HEADER in line]
    if not starts:
        raise ImportFormatError("no vLLM 'Serving Benchmark Result' block found")
    out = ImportOutcome()
    bench = "vllm:console"
    previous_end = 0
    for start in starts:
        end = _block_end(lines, start)
        _, preamble_params = _console_block(lines[previous_end:start])
        figures, params = _console_block(lines[start:end])
        previous_end = end
        params = {"tool": "vllm-bench-serve", **preamble_params, **params}
        completed, failed = figures.get("completed"), figures.get("failed")
        out.failures += request_failures(bench, params, completed, failed)
        if completed == 0:
            continue
        for key, value in figures.items():
            if _LAT.match(key):
                out.results.append(ResultRecord(SUITE, bench, key, value, "ms", "lower", dict(params)))
            elif key in RUN_FIGURES:
                metric, unit, direction = RUN_FIGURES[key]
                out.results.append(ResultRecord(SUITE, bench, metric, value, unit, direction, dict(params)))
    if not out.results and not out.failures:
        raise ImportFormatError("no figures in the vLLM 'Serving Benchmark Result' block")
    out.meta = {"runs": len(starts)}
    return out


# ----------------------------------------------------------------------- nightly summary table

# Column of vLLM's nightly-benchmarks table (`convert-results-json-to-markdown`) -> result JSON key.
_NIGHTLY_COLUMNS = {
    "Tput (req/s)": "request_throughput",
    "Output Tput (tok/s)": "output_throughput",
    "Total Tput (tok/s)": "total_token_throughput",
}
_NIGHTLY_STAT = re.compile(r"^(Mean|Median|Std|P(\d+(?:\.\d+)?))\s+(TTFT|TPOT|ITL|E2EL)\s+\(ms\)$")


def looks_like_nightly_table(data: Any) -> bool:
    return (
        isinstance(data, list)
        and bool(data)
        and all(isinstance(row, dict) and "Test name" in row for row in data)
    )


def parse_vllm_nightly_table(data: list[dict[str, Any]], source_name: str | None) -> ImportOutcome:
    """vLLM nightly-benchmarks' summary rows: one run per row, its test name and GPU as params."""
    if not looks_like_nightly_table(data):
        raise ImportFormatError("not a vLLM nightly-benchmarks table (rows with a 'Test name')")
    out = ImportOutcome()
    for row in data:
        params = compact(
            {
                "tool": "vllm-nightly-benchmarks",
                "test_name": row.get("Test name"),
                "gpu": row.get("GPU"),
                "num_prompts": row.get("# of req."),
            }
        )
        bench = f"vllm-nightly:{row.get('Test name')}"
        for column, value in row.items():
            v = num(value)
            if v is None or column in ("# of req.",):
                continue
            if column in _NIGHTLY_COLUMNS:
                metric, unit, direction = RUN_FIGURES[_NIGHTLY_COLUMNS[column]]
                out.results.append(ResultRecord(SUITE, bench, metric, v, unit, direction, dict(params)))
            elif m := _NIGHTLY_STAT.match(column):
                stat = f"p{m[2]}" if m[2] else m[1].lower()
                metric = f"{stat}_{m[3].lower()}_ms"
                out.results.append(ResultRecord(SUITE, bench, metric, v, "ms", "lower", dict(params)))
            else:
                raise ImportFormatError(f"vLLM nightly table: unknown numeric column {column!r}")
    out.meta = {"rows": len(data)}
    return out
