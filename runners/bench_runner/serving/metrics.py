"""Serving metrics with vLLM ``bench serve`` definitions and result-JSON key names.

Everything is computed from per-request arrays so a vLLM result file (which stores ``ttfts``,
``itls``, ``output_lens``) and one of ours go through the same code. A failed request counts in
``failed`` and nowhere else: it adds no value to any sample array, statistic or total. A
statistic with no sample at all reads 0 in the result JSON, as in vLLM's, and is never turned
into a record; nor is anything of a run in which every request failed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..records import Direction, ResultRecord
from .client import RequestOutput

DEFAULT_PERCENTILES: tuple[float, ...] = (50, 90, 95, 99)
LATENCY_METRICS: tuple[str, ...] = ("ttft", "tpot", "itl", "e2el")
# Summarised like the latencies, reported beside them: time inside the client before the socket.
CLIENT_METRICS: tuple[str, ...] = ("client_queue",)
SLO_METRICS: tuple[str, ...] = ("ttft", "tpot", "e2el")


def percentile_key(p: float) -> str:
    """vLLM's spelling: 99 -> "99", 99.9 -> "99.9"."""
    return str(int(p)) if int(p) == p else str(p)


def summarize_ms(values_s: Sequence[float], percentiles: Iterable[float], name: str) -> dict[str, float]:
    """mean/median/std/pN of a list of seconds, in ms, keyed like vLLM (``mean_ttft_ms`` ...).

    Uses population std and ``numpy.percentile`` with linear interpolation; an empty list
    gives zeros, as vLLM's ``np.mean(x or 0)`` does. Those zeros are no measurement:
    ``to_result_records`` makes no record of a statistic without samples.
    """
    arr = np.asarray(values_s if len(values_s) else [0.0], dtype=float) * 1000.0
    out = {
        f"mean_{name}_ms": float(np.mean(arr)),
        f"median_{name}_ms": float(np.median(arr)),
        f"std_{name}_ms": float(np.std(arr)),
    }
    for p in percentiles:
        out[f"p{percentile_key(p)}_{name}_ms"] = float(np.percentile(arr, p, method="linear"))
    return out


@dataclass
class PerRequest:
    """The per-request facts the aggregates need (seconds, tokens); used only when ``success``.

    ``output_shortfall`` (tokens short of the requested length) and ``client_queue`` are known
    for our own runs, not for a vLLM result file.
    """

    success: bool
    input_len: int
    output_len: int
    ttft: float
    itl: list[float]
    e2el: float
    output_shortfall: int | None = None
    client_queue: float | None = None


def per_request_from_outputs(outputs: Iterable[RequestOutput]) -> list[PerRequest]:
    return [
        PerRequest(
            o.success,
            o.input_len,
            o.output_tokens if o.success else 0,
            o.ttft,
            o.itl,
            o.e2el,
            o.output_shortfall,
            o.client_queue,
        )
        for o in outputs
    ]


def parse_goodput(specs: Sequence[str] | Mapping[str, float] | None) -> dict[str, float]:
    """``["ttft:500", "tpot:50"]`` (vLLM's ``--goodput`` syntax) -> ``{"ttft": 500.0, ...}`` (ms)."""
    if not specs:
        return {}
    if isinstance(specs, Mapping):
        items = [(str(k), float(v)) for k, v in specs.items()]
    else:
        items = []
        for spec in specs:
            key, sep, value = spec.partition(":")
            if not sep:
                raise ValueError(f"goodput SLO must look like 'ttft:500', got {spec!r}")
            items.append((key.strip(), float(value)))
    out: dict[str, float] = {}
    for key, ms in items:
        if key not in SLO_METRICS:
            raise ValueError(f"unknown SLO metric {key!r}; use one of {', '.join(SLO_METRICS)}")
        if ms < 0:
            raise ValueError(f"SLO {key} must be >= 0 ms")
        out[key] = ms
    return out


def compute_metrics(
    reqs: Sequence[PerRequest],
    duration: float,
    *,
    percentiles: Iterable[float] = DEFAULT_PERCENTILES,
    goodput_slos_ms: Mapping[str, float] | None = None,
    num_accelerators: int = 1,
) -> dict[str, Any]:
    """Aggregate per-request facts into vLLM-named metrics.

    Only successful requests contribute. TPOT statistics use only requests with more than one
    output token; goodput treats a one-token request's TPOT as 0; every SLO comparison is
    inclusive (<=). ``short_requests`` and ``output_shortfall_tokens`` (requests that produced
    fewer output tokens than asked, and the tokens missing in all) are None when the requests
    carry no shortfall (a vLLM file); the client-queue statistics likewise.
    """
    percentiles = tuple(percentiles)
    ok = [r for r in reqs if r.success]
    ttfts = [r.ttft for r in ok]
    e2els = [r.e2el for r in ok]
    itls = [g for r in ok for g in r.itl]
    tpots: list[float] = []
    all_tpots: list[float] = []  # with 0 for one-token requests, for goodput
    for r in ok:
        tpot = 0.0
        if r.output_len > 1:
            tpot = (r.e2el - r.ttft) / (r.output_len - 1)
            tpots.append(tpot)
        all_tpots.append(tpot)
    completed = len(ok)
    total_input = sum(r.input_len for r in ok)
    total_output = sum(r.output_len for r in ok)
    dur = duration if duration > 0 else math.nan

    result: dict[str, Any] = {
        "duration": duration,
        "completed": completed,
        "failed": len(reqs) - completed,
        "total_input_tokens": total_input,
        "total_output_tokens": total_output,
        "request_throughput": completed / dur,
        "output_throughput": total_output / dur,
        "total_token_throughput": (total_input + total_output) / dur,
    }
    slos = dict(goodput_slos_ms or {})
    if slos:
        values = {"ttft": ttfts, "tpot": all_tpots, "e2el": e2els}
        # Compare in seconds against ms / 1000, exactly as vLLM does, so boundary cases agree.
        limits_s = {k: slo / 1000.0 for k, slo in slos.items()}
        good = 0
        for i in range(completed):
            if all(values[k][i] <= limit for k, limit in limits_s.items()):
                good += 1
        result["request_goodput"] = good / dur
        result["goodput_slos_ms"] = slos
    else:
        result["request_goodput"] = None
    for name, vals in (("ttft", ttfts), ("tpot", tpots), ("itl", itls), ("e2el", e2els)):
        result.update(summarize_ms(vals, percentiles, name))
    queues = [r.client_queue for r in ok if r.client_queue is not None]
    if queues:
        result.update(summarize_ms(queues, percentiles, "client_queue"))
    shortfalls = [r.output_shortfall for r in ok if r.output_shortfall is not None]
    result["short_requests"] = sum(1 for n in shortfalls if n > 0) if shortfalls else None
    result["output_shortfall_tokens"] = sum(shortfalls) if shortfalls else None
    # Interactivity: tokens/s one user sees while decoding.
    mean_tpot, median_tpot = result["mean_tpot_ms"], result["median_tpot_ms"]
    result["interactivity"] = 1000.0 / mean_tpot if mean_tpot else None
    result["median_interactivity"] = 1000.0 / median_tpot if median_tpot else None
    n_acc = max(1, int(num_accelerators))
    result["num_accelerators"] = n_acc
    result["output_throughput_per_accelerator"] = result["output_throughput"] / n_acc
    result["total_token_throughput_per_accelerator"] = result["total_token_throughput"] / n_acc
    return result


def recompute_vllm_result(data: Mapping[str, Any], percentiles: Iterable[float] = (99,)) -> dict[str, Any]:
    """Recompute a vLLM result file's aggregates from its own per-request arrays.

    vLLM stores ``ttfts`` and ``itls`` for every request and ``output_lens``; requests with an
    ``errors`` entry that is non-empty are failures (vLLM stores 0.0 as their TTFT; ours store
    None), and so is a request whose TTFT is None. E2EL is not stored, so it is rebuilt as
    TTFT + sum(ITL) (exact up to float rounding and the two ``perf_counter`` reads vLLM takes at
    the first token, a sub-microsecond difference).
    """
    ttfts = data["ttfts"]
    itls = data["itls"]
    out_lens = data["output_lens"]
    in_lens = data.get("input_lens") or [0] * len(ttfts)
    errors = data.get("errors") or [""] * len(ttfts)
    reqs = []
    for ttft, itl, olen, ilen, err in zip(ttfts, itls, out_lens, in_lens, errors, strict=True):
        if err or ttft is None:
            reqs.append(PerRequest(False, int(ilen or 0), 0, 0.0, [], 0.0))
            continue
        gaps = list(itl or [])
        reqs.append(PerRequest(True, int(ilen), int(olen), float(ttft), gaps, float(ttft) + math.fsum(gaps)))
    return compute_metrics(reqs, float(data["duration"]), percentiles=percentiles)


def goodput_ratio(metrics: Mapping[str, Any], best_request_throughput: float | None) -> float | None:
    """Useful requests/s over the best request throughput measured for the engine and hardware.

    Useful requests/s is the SLO goodput when SLOs were given, else the request throughput.
    ``best_request_throughput`` should be the best measured with the same engine, hardware and
    workload (input and output lengths), since a longer workload is slower on any engine; None
    or 0 gives None.
    """
    if not best_request_throughput or best_request_throughput <= 0:
        return None
    useful = metrics.get("request_goodput")
    if useful is None:
        useful = metrics.get("request_throughput")
    if useful is None or not math.isfinite(float(useful)):
        return None
    return float(useful) / best_request_throughput


# name -> (unit, direction) for the figures worth tracking as series.
_RECORD_METRICS: dict[str, tuple[str, Direction]] = {
    "request_throughput": ("req/s", "higher"),
    "output_throughput": ("tok/s", "higher"),
    "total_token_throughput": ("tok/s", "higher"),
    "output_throughput_per_accelerator": ("tok/s", "higher"),
    "total_token_throughput_per_accelerator": ("tok/s", "higher"),
    "request_goodput": ("req/s", "higher"),
    "goodput_ratio": ("ratio", "higher"),
    "interactivity": ("tok/s", "higher"),
    "median_interactivity": ("tok/s", "higher"),
    "short_requests": ("requests", "lower"),
    "output_shortfall_tokens": ("tokens", "lower"),
}
_MAX_SAMPLES = 5000
# Per-request array in the result -> the statistic family its samples belong to.
_SAMPLE_ARRAYS: dict[str, str] = {
    "ttft": "ttfts",
    "itl": "itls",
    "e2el": "e2els",
    "tpot": "tpots",
    "client_queue": "client_queues",
}


def request_samples_ms(result: Mapping[str, Any], name: str) -> list[float]:
    """The per-request values behind statistic ``name``, in ms, from successful requests only.

    A None entry (ours, for a failed request or an undefined TPOT) is skipped, and so is every
    entry whose ``errors`` entry is non-empty when the array lines up with ``errors``: vLLM
    stores 0.0 as a failed request's TTFT, which is no measurement. ITL arrays (a list of gaps
    per request) are flattened.
    """
    values = result.get(_SAMPLE_ARRAYS[name]) or []
    errors = result.get("errors")
    failed = [bool(e) for e in errors] if isinstance(errors, list) and len(errors) == len(values) else None
    out: list[float] = []
    for i, value in enumerate(values):
        if value is None or (failed is not None and failed[i]):
            continue
        if isinstance(value, list):
            out.extend(float(g) * 1000.0 for g in value if g is not None)
        else:
            out.append(float(value) * 1000.0)
    return out


def to_result_records(
    result: Mapping[str, Any],
    *,
    suite: str,
    benchmark: str,
    params: Mapping[str, Any] | None = None,
) -> list[ResultRecord]:
    """Turn a serving result (ours, or a vLLM file) into ``ResultRecord``s.

    Latencies are in ms (lower is better), throughputs in tok/s or req/s (higher is better).
    The per-request samples of successful requests ride along with the mean (capped at 5000
    values). No record comes from a statistic that no request contributed to (None, or the
    per-request array is present and holds no value: e.g. TPOT when every request had one
    output token), nor from a result in which no request completed.
    """
    params = dict(params or {})
    records: list[ResultRecord] = []
    if result.get("completed") == 0:
        return records
    for name in LATENCY_METRICS + CLIENT_METRICS:
        prefix_keys = [k for k in result if k.endswith(f"_{name}_ms") and not k.startswith("std_")]
        stats = {
            k.removesuffix(f"_{name}_ms"): float(result[k])
            for k in result
            if k.endswith(f"_{name}_ms") and result[k] is not None
        }
        values = request_samples_ms(result, name)
        if not values and _SAMPLE_ARRAYS[name] in result:
            continue  # the statistics of no sample (vLLM's zeros) are no measurement
        samples = values if 0 < len(values) <= _MAX_SAMPLES else None
        for key in prefix_keys:
            value = result[key]
            if value is None or not math.isfinite(float(value)):
                continue
            records.append(
                ResultRecord(
                    suite=suite,
                    benchmark=benchmark,
                    metric=key,
                    value=float(value),
                    unit="ms",
                    direction="lower",
                    params=params,
                    samples=samples if key.startswith("mean_") else None,
                    stats=stats if key.startswith("mean_") else None,
                )
            )
    for key, (unit, direction) in _RECORD_METRICS.items():
        value = result.get(key)
        if value is None or not math.isfinite(float(value)):
            continue
        records.append(
            ResultRecord(
                suite=suite,
                benchmark=benchmark,
                metric=key,
                value=float(value),
                unit=unit,
                direction=direction,
                params=params,
            )
        )
    return records
