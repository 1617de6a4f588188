"""Serving benchmark outputs: vLLM `--save-result` JSON (and its console block), SGLang
`bench_serving` JSONL, LLMPerf summary JSON. Metric names follow vLLM's result JSON."""

from __future__ import annotations

import json
import re
import statistics
from typing import Any

from .base import ImportFormatError, ImportOutcome, merge_duplicates, num
from .records import Direction, FailureRecord, ResultRecord

SUITE = "serving"
_LAT = re.compile(r"^(mean|median|std|p\d+(?:\.\d+)?)_(ttft|tpot|itl|e2el)_ms$")
_THROUGHPUT = {
    "request_throughput": "req/s",
    "request_goodput": "req/s",
    "output_throughput": "tok/s",
    "total_token_throughput": "tok/s",
}


def _model_short(model: Any) -> str:
    return str(model or "unknown")


# ---------------------------------------------------------------------------------------- vLLM


def parse_vllm_json(data: dict[str, Any], source_name: str | None) -> ImportOutcome:
    if not any(k in data for k in ("request_throughput", "mean_ttft_ms", "completed")):
        raise ImportFormatError("not a vLLM result JSON (no request_throughput / mean_ttft_ms)")
    bench = f"vllm:{_model_short(data.get('model_id'))}"
    params: dict[str, Any] = {
        "tool": "vllm-bench-serve",
        "backend": data.get("backend"),
        "model": data.get("model_id"),
        "num_prompts": data.get("num_prompts"),
        "request_rate": _rate(data.get("request_rate")),
        "burstiness": data.get("burstiness"),
        "max_concurrency": data.get("max_concurrency"),
    }
    params = {k: v for k, v in params.items() if v is not None}
    out = ImportOutcome()
    ttfts = [float(x) * 1000 for x in data.get("ttfts") or [] if num(x) is not None]
    out_lens = data.get("output_lens") or []
    tpots = []
    for ttft, itl, n in zip(data.get("ttfts") or [], data.get("itls") or [], out_lens, strict=False):
        if n and n > 1 and isinstance(itl, list):
            e2el = ttft + sum(itl)
            tpots.append((e2el - ttft) / (n - 1) * 1000)
    for key, value in data.items():
        key_clean = key.rstrip(":")  # vLLM writes the odd key "request_goodput:"
        v = num(value)
        if v is None:
            continue
        m = _LAT.match(key_clean)
        if m:
            samples = ttfts if (m[2] == "ttft" and ttfts) else (tpots if (m[2] == "tpot" and tpots) else None)
            out.results.append(
                ResultRecord(
                    SUITE,
                    bench,
                    key_clean,
                    v,
                    "ms",
                    "lower",
                    dict(params),
                    samples=samples if m[1] == "mean" else None,
                )
            )
        elif key_clean in _THROUGHPUT:
            out.results.append(
                ResultRecord(SUITE, bench, key_clean, v, _THROUGHPUT[key_clean], "higher", dict(params))
            )
        elif key_clean in ("duration", "completed", "total_input_tokens", "total_output_tokens"):
            unit = "s" if key_clean == "duration" else ("requests" if key_clean == "completed" else "tokens")
            out.results.append(
                ResultRecord(
                    SUITE,
                    bench,
                    key_clean,
                    v,
                    unit,
                    "higher" if key_clean != "duration" else "lower",
                    dict(params),
                )
            )
    errors = [e for e in data.get("errors") or [] if e]
    completed = num(data.get("completed"))
    if completed == 0:
        out.failures.append(
            FailureRecord(
                SUITE,
                bench,
                "crash",
                "vLLM benchmark completed no request",
                dict(params),
                "\n".join(map(str, errors[:5])) or None,
            )
        )
    elif errors:
        out.results.append(
            ResultRecord(
                SUITE, bench, "failed_requests", float(len(errors)), "requests", "lower", dict(params)
            )
        )
    meta: dict[str, Any] = {"date": data.get("date"), "model": data.get("model_id")}
    if ttfts:
        meta["recomputed"] = {
            "mean_ttft_ms": statistics.fmean(ttfts),
            "median_ttft_ms": statistics.median(ttfts),
        }
        if tpots:
            meta["recomputed"]["mean_tpot_ms"] = statistics.fmean(tpots)
    out.meta = meta
    return out


def _rate(value: Any) -> Any:
    v = num(value)
    if v is None:
        return "inf" if str(value).lower() == "inf" else value
    return v


_CONSOLE = re.compile(r"^(?P<label>[A-Za-z][^:]*?):\s+(?P<value>[-0-9.]+)\s*$")
_CONSOLE_MAP: dict[str, tuple[str, str, Direction]] = {
    "Successful requests": ("completed", "requests", "higher"),
    "Benchmark duration (s)": ("duration", "s", "lower"),
    "Total input tokens": ("total_input_tokens", "tokens", "higher"),
    "Total generated tokens": ("total_output_tokens", "tokens", "higher"),
    "Request throughput (req/s)": ("request_throughput", "req/s", "higher"),
    "Request goodput (req/s)": ("request_goodput", "req/s", "higher"),
    "Output token throughput (tok/s)": ("output_throughput", "tok/s", "higher"),
    "Total Token throughput (tok/s)": ("total_token_throughput", "tok/s", "higher"),
}


def parse_vllm_console(text: str, source_name: str | None) -> ImportOutcome:
    out = ImportOutcome()
    bench = "vllm:console"
    params = {"tool": "vllm-bench-serve"}
    for line in text.splitlines():
        m = _CONSOLE.match(line.strip())
        if not m:
            continue
        label, value = m["label"].strip(), float(m["value"])
        if label in _CONSOLE_MAP:
            metric, unit, direction = _CONSOLE_MAP[label]
            out.results.append(ResultRecord(SUITE, bench, metric, value, unit, direction, dict(params)))
            continue
        lm = re.match(r"^(Mean|Median|P(\d+(?:\.\d+)?)|Std)\s+(TTFT|TPOT|ITL|E2EL)\s+\(ms\)$", label)
        if lm:
            stat = "p" + lm[2] if lm[2] else lm[1].lower()
            out.results.append(
                ResultRecord(SUITE, bench, f"{stat}_{lm[3].lower()}_ms", value, "ms", "lower", dict(params))
            )
    if not out.results:
        raise ImportFormatError("no vLLM 'Serving Benchmark Result' lines found")
    return out


# -------------------------------------------------------------------------------------- SGLang

_SGLANG_LOWER = re.compile(r"^(mean|median|std|p\d+)_(e2e_latency|ttft|itl|tpot)_ms$")


def parse_sglang_jsonl(text: str, source_name: str | None) -> ImportOutcome:
    out = ImportOutcome()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ImportFormatError("empty SGLang JSONL")
    for i, line in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ImportFormatError(f"SGLang JSONL line {i + 1} is not JSON: {exc}") from exc
        if not isinstance(row, dict) or "output_throughput" not in row:
            raise ImportFormatError(f"SGLang JSONL line {i + 1} has no output_throughput")
        params = {
            "tool": "sglang-bench-serving",
            "backend": row.get("backend"),
            "dataset": row.get("dataset_name"),
            "request_rate": _rate(row.get("request_rate")),
            "max_concurrency": row.get("max_concurrency"),
            "input_len": row.get("random_input_len"),
            "output_len": row.get("random_output_len"),
        }
        params = {k: v for k, v in params.items() if v is not None}
        bench = f"sglang:{row.get('dataset_name') or 'unknown'}"
        for key, value in row.items():
            v = num(value)
            if v is None:
                continue
            m = _SGLANG_LOWER.match(key)
            if m:
                metric = key.replace("e2e_latency", "e2el")
                out.results.append(ResultRecord(SUITE, bench, metric, v, "ms", "lower", dict(params)))
            elif key in ("output_throughput", "request_throughput", "input_throughput", "total_throughput"):
                unit = "req/s" if key == "request_throughput" else "tok/s"
                out.results.append(ResultRecord(SUITE, bench, key, v, unit, "higher", dict(params)))
        d, c = num(row.get("duration")), num(row.get("completed"))
        if d and c is not None and "request_throughput" not in row:
            out.results.append(
                ResultRecord(SUITE, bench, "request_throughput", c / d, "req/s", "higher", dict(params))
            )
        if c == 0:
            out.failures.append(
                FailureRecord(SUITE, bench, "crash", "SGLang run completed no request", params)
            )
    out.results = merge_duplicates(out.results)
    out.meta = {"runs": len(lines)}
    return out


# -------------------------------------------------------------------------------------- LLMPerf

_LLMPERF_STATS = {
    "mean": "mean",
    "quantiles_p50": "median",
    "quantiles_p90": "p90",
    "quantiles_p95": "p95",
    "quantiles_p99": "p99",
    "stddev": "std",
}
_LLMPERF_METRICS = {"ttft_s": "ttft", "inter_token_latency_s": "itl", "end_to_end_latency_s": "e2el"}


def parse_llmperf_summary(data: dict[str, Any], source_name: str | None) -> ImportOutcome:
    if not any(k.startswith("results_") for k in data):
        raise ImportFormatError("not an LLMPerf summary (no results_* keys)")
    params = {
        "tool": "llmperf",
        "framework": data.get("framework"),
        "input_tokens": num(data.get("mean_input_tokens")),
        "output_tokens": num(data.get("mean_output_tokens")),
        "concurrency": data.get("num_concurrent_requests"),
    }
    params = {k: v for k, v in params.items() if v is not None}
    bench = f"llmperf:{data.get('model', 'unknown')}"
    out = ImportOutcome()
    for src, short in _LLMPERF_METRICS.items():
        for stat_src, stat in _LLMPERF_STATS.items():
            v = num(data.get(f"results_{src}_{stat_src}"))
            if v is not None:
                out.results.append(
                    ResultRecord(SUITE, bench, f"{stat}_{short}_ms", v * 1000, "ms", "lower", dict(params))
                )
    v = num(data.get("results_mean_output_throughput_token_per_s"))
    if v is not None:
        out.results.append(
            ResultRecord(SUITE, bench, "output_throughput", v, "tok/s", "higher", dict(params))
        )
    v = num(data.get("results_num_completed_requests_per_min"))
    if v is not None:
        out.results.append(
            ResultRecord(SUITE, bench, "request_throughput", v / 60.0, "req/s", "higher", dict(params))
        )
    v = num(data.get("results_error_rate"))
    if v is not None:
        out.results.append(ResultRecord(SUITE, bench, "error_rate", v, "ratio", "lower", dict(params)))
    completed = num(data.get("results_num_completed_requests"))
    if completed == 0:
        out.failures.append(
            FailureRecord(
                SUITE,
                bench,
                "crash",
                "LLMPerf completed no request",
                params,
                str(data.get("results_error_code_frequency")),
            )
        )
    out.meta = {"name": data.get("name"), "timestamp": data.get("timestamp")}
    return out
