"""Serving load generator for OpenAI-compatible streaming servers (vLLM ``bench serve`` metrics).

Python API::

    from bench_runner.serving import BenchConfig, run_benchmark, to_result_records
    result = run_benchmark(BenchConfig(base_url="http://127.0.0.1:8000", input_len=128, output_len=64,
                                       num_requests=50, concurrency=4))
    doc = result.to_json()            # vLLM result-JSON keys + raw per-request timestamps
    records = to_result_records(doc, suite="serving", benchmark="gemma-270m-128x64-c4")
"""

from .client import RequestOutput, RequestSpec, build_payload, send_request
from .loadgen import (
    BenchConfig,
    BenchmarkResult,
    arrival_offsets,
    arun_benchmark,
    arun_sweep,
    run_benchmark,
    run_sweep,
)
from .metrics import compute_metrics, parse_goodput, recompute_vllm_result, summarize_ms, to_result_records
from .sse import SSESplitter
from .workload import CORPUS, ServerTokenizer, Workload, build_requests, eos_suppression, exact_prompt

__all__ = [
    "CORPUS",
    "BenchConfig",
    "BenchmarkResult",
    "RequestOutput",
    "RequestSpec",
    "SSESplitter",
    "ServerTokenizer",
    "Workload",
    "arrival_offsets",
    "arun_benchmark",
    "arun_sweep",
    "build_payload",
    "build_requests",
    "compute_metrics",
    "eos_suppression",
    "exact_prompt",
    "parse_goodput",
    "recompute_vllm_result",
    "run_benchmark",
    "run_sweep",
    "send_request",
    "summarize_ms",
    "to_result_records",
]
