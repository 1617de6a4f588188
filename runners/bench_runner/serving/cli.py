"""``bench-runner serve-bench``: the serving load generator from the command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

from .loadgen import BenchConfig, BenchmarkResult, arun_benchmark, arun_sweep
from .metrics import CLIENT_METRICS, LATENCY_METRICS, parse_goodput, to_result_records

_TITLES = {
    "ttft": "Time to First Token",
    "tpot": "Time per Output Token (excl. 1st token)",
    "itl": "Inter-token Latency",
    "e2el": "End-to-end Latency",
    "client_queue": "Client Queue (issue to socket)",
}
_LABELS = {"client_queue": "Client Queue"}


def format_summary(data: dict[str, Any]) -> str:
    """A console block in the layout of vLLM's ``bench serve`` summary."""
    lines = ["{s:{c}^50}".format(s=" Serving Benchmark Result ", c="=")]

    def row(label: str, value: Any, fmt: str = "{:<10.2f}") -> None:
        text = fmt.format(value) if isinstance(value, float) else f"{value!s:<10}"
        lines.append(f"{label:<40} {text}")

    row("Successful requests:", data["completed"])
    row("Failed requests:", data["failed"])
    row("Benchmark duration (s):", data["duration"])
    row("Total input tokens:", data["total_input_tokens"])
    row("Total generated tokens:", data["total_output_tokens"])
    row("Request throughput (req/s):", data["request_throughput"])
    if data.get("request_goodput") is not None:
        row("Request goodput (req/s):", data["request_goodput"])
    row("Output token throughput (tok/s):", data["output_throughput"])
    row("Total Token throughput (tok/s):", data["total_token_throughput"])
    if data.get("interactivity") is not None:
        row("Interactivity (tok/s/user):", data["interactivity"])
    if data.get("short_requests") is not None:
        row("Requests short of output length:", data["short_requests"])
        row("Output tokens short in all:", data["output_shortfall_tokens"])
    for name in LATENCY_METRICS + CLIENT_METRICS:
        if f"mean_{name}_ms" not in data:
            continue
        lines.append("{s:{c}^50}".format(s=_TITLES[name], c="-"))
        upper = _LABELS.get(name, name.upper())
        row(f"Mean {upper} (ms):", data[f"mean_{name}_ms"])
        row(f"Median {upper} (ms):", data[f"median_{name}_ms"])
        for key in data:
            if key.startswith("p") and key.endswith(f"_{name}_ms"):
                row(f"P{key[1:].split('_')[0]} {upper} (ms):", data[key])
    lines.append("=" * 50)
    return "\n".join(lines)


def _parse_list(text: str | None, kind: type) -> list[Any] | None:
    if text is None:
        return None
    return [kind(x) for x in text.split(",") if x.strip()]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("serve-bench", help="benchmark an OpenAI-compatible streaming server")
    p.add_argument("--base-url", help="server URL, e.g. http://127.0.0.1:8000 (or use --reference-engine)")
    p.add_argument(
        "--reference-engine",
        action="store_true",
        help="start the reference llama.cpp engine with Gemma 3 270M and benchmark it",
    )
    p.add_argument("--engine-log", default=None, help="engine log file (with --reference-engine)")
    p.add_argument("--endpoint", choices=["completions", "chat"], default="completions")
    p.add_argument("--model", default="")
    p.add_argument(
        "--engine",
        default="generic",
        help="how to ignore EOS: llama-cpp-python | vllm | sglang | llama.cpp | generic",
    )
    p.add_argument(
        "--eog-token",
        action="append",
        default=[],
        help="end-of-generation token text to suppress (llama-cpp-python; default: the served "
        "model's, found through its tokenizer)",
    )
    p.add_argument("--input-len", type=int, default=128)
    p.add_argument("--output-len", type=int, default=64)
    p.add_argument("--num-prompts", type=int, default=100)
    p.add_argument(
        "--shared-prefix-len",
        type=int,
        default=0,
        help="tokens every prompt starts with, to measure prefix caching (default 0: none shared)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="warm-up requests, excluded from figures (default: one per concurrent user)",
    )
    p.add_argument(
        "--concurrency", default="1", help="closed-loop users; a comma list runs a sweep (e.g. 1,2,4,8)"
    )
    p.add_argument(
        "--request-rate",
        default=None,
        help="open loop requests/s ('inf' for all at once); a comma list runs a sweep",
    )
    p.add_argument("--burstiness", type=float, default=1.0, help="gamma shape of arrival gaps (1 = Poisson)")
    p.add_argument("--max-concurrency", type=int, default=None, help="open loop: cap on requests in flight")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--goodput", nargs="*", default=[], help="SLOs in ms, e.g. ttft:500 tpot:50 e2el:3000")
    p.add_argument("--percentiles", default="50,90,95,99")
    p.add_argument("--num-accelerators", type=int, default=1)
    p.add_argument(
        "--best-request-throughput",
        type=float,
        default=None,
        help="best req/s measured for this engine, hardware and workload: goodput_ratio's denominator",
    )
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--no-usage", action="store_true", help="do not ask for stream usage")
    p.add_argument("--no-server-tokenizer", action="store_true")
    p.add_argument("--timeout", type=float, default=600.0, help="per-request timeout (s)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--result-file", default=None, help="write the result JSON here (a list for sweeps)")
    p.add_argument("--records-file", default=None, help="write ResultRecords JSON here")
    p.add_argument("--suite", default="serving")
    p.add_argument("--benchmark-name", default=None)
    p.set_defaults(func=run_cli)


def _benchmark_name(args: argparse.Namespace, r: BenchmarkResult) -> str:
    if args.benchmark_name:
        base: str = args.benchmark_name
    else:
        base = f"{(args.model or 'model').split('/')[-1]}-{args.input_len}x{args.output_len}"
    cfg = r.config
    if cfg.closed_loop:
        return f"{base}-c{cfg.concurrency}"
    return f"{base}-r{cfg.request_rate:g}"


async def _main(args: argparse.Namespace) -> int:
    concurrencies = _parse_list(args.concurrency, int) or [1]
    rates = _parse_list(args.request_rate, float)
    engine = None
    base_url = args.base_url
    eog = list(args.eog_token)
    if args.reference_engine:
        from ..engine import REFERENCE_EOG_TOKENS, reference_engine_command

        cmd = reference_engine_command()
        log = args.engine_log or str(Path(tempfile.gettempdir()) / f"reference-engine-{cmd.port}.log")
        engine = cmd.process(log)
        print(f"[serve-bench] starting reference engine on {cmd.base_url}, log {log}", file=sys.stderr)
        engine.start()
        engine.wait_healthy()
        base_url = cmd.base_url
        args.model = args.model or cmd.model
        args.engine = "llama-cpp-python"
        eog = eog or list(REFERENCE_EOG_TOKENS)
    if not base_url:
        print("serve-bench: give --base-url or --reference-engine", file=sys.stderr)
        return 2
    try:
        config = BenchConfig(
            base_url=base_url,
            model=args.model,
            endpoint=args.endpoint,
            engine=args.engine,
            input_len=args.input_len,
            output_len=args.output_len,
            num_requests=args.num_prompts,
            warmup_requests=args.warmup,
            concurrency=concurrencies[0],
            request_rate=rates[0] if rates else None,
            burstiness=args.burstiness,
            max_concurrency=args.max_concurrency,
            seed=args.seed,
            percentiles=tuple(_parse_list(args.percentiles, float) or []),
            goodput_slos_ms=parse_goodput(args.goodput),
            num_accelerators=args.num_accelerators,
            best_request_throughput=args.best_request_throughput,
            shared_prefix_len=args.shared_prefix_len,
            temperature=args.temperature,
            include_usage=not args.no_usage,
            eog_tokens=tuple(eog),
            use_server_tokenizer=not args.no_server_tokenizer,
            request_timeout=args.timeout,
            progress=not args.no_progress,
        )
        if rates and len(rates) > 1:
            results = await arun_sweep(config, rates=rates, engine=engine)
        elif len(concurrencies) > 1 and not rates:
            results = await arun_sweep(config, concurrencies=concurrencies, engine=engine)
        else:
            results = [await arun_benchmark(config, engine=engine)]
    finally:
        if engine is not None:
            engine.stop()
    docs = [r.to_json() for r in results]
    for doc in docs:
        print(format_summary(doc))
    if args.result_file:
        Path(args.result_file).write_text(json.dumps(docs[0] if len(docs) == 1 else docs, indent=1))
    if args.records_file:
        records = []
        for r, doc in zip(results, docs, strict=True):
            params = {
                "model": args.model,
                "endpoint": args.endpoint,
                "isl": args.input_len,
                "osl": args.output_len,
                "concurrency": r.config.concurrency if r.config.closed_loop else r.config.max_concurrency,
                "request_rate": None
                if r.config.request_rate is None or math.isinf(r.config.request_rate)
                else r.config.request_rate,
                "burstiness": r.config.burstiness,
            }
            records += [
                rec.to_json()
                for rec in to_result_records(
                    doc, suite=args.suite, benchmark=_benchmark_name(args, r), params=params
                )
            ]
        Path(args.records_file).write_text(json.dumps(records, indent=1))
    failed = sum(d["failed"] for d in docs)
    return 0 if failed == 0 else 1


def run_cli(args: argparse.Namespace) -> int:
    return asyncio.run(_main(args))
