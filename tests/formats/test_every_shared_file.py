"""Every file in shared/data is either imported completely or refused with a sentence that says
what it is and why it is not imported: never a bare "cannot tell", never a partial import.

A file added to shared/data fails here until it is put in one of the two tables below.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from pathlib import Path

import pytest
from bench_formats import ImportFormatError, ImportOutcome, parse

from tests.conftest import SHARED_DATA

# file -> (format, results, failures). The per-format tests check the values themselves.
IMPORTED: dict[str, tuple[str, int, int]] = {
    "llama_bench/llama-bench_json_rtx4080_qwen2.5-7b_upstream_doc_example.json": ("llama-bench", 2, 0),
    "llama_bench/llama-bench_jsonl_raw_runs_llama2-7b-Q4_0_strixhalo.jsonl": ("llama-bench", 364, 0),
    "llama_bench/llama-bench_md_gptoss120b_vulkan_rpc_4nodes.txt": ("llama-bench", 2, 0),
    "llama_bench/llama-bench_md_gptoss120b_vulkan_strixhalo_1node.txt": ("llama-bench", 2, 0),
    "llama_bench/llama-bench_md_metal_mac-studio_llama3.3-70b_issue-excerpt.txt": ("llama-bench", 4, 0),
    "llama_bench/llama-bench_md_rocm_gfx1151_llama2-7b_quant_sweep_hipblaslt_ab.txt": ("llama-bench", 16, 0),
    "mlx/exo/exo_bench_qwen3.5-122b-a10b-mlx-8bit_tp2-jaccl_target-only.json": ("exo", 16, 0),
    "mlx/exo/exo_bench_qwen3.5-4b-mlx-8bit_dflash.json": ("exo", 21, 0),
    "mlx/exo/exo_bench_qwen3.5-4b-mlx-8bit_target-only.json": ("exo", 16, 0),
    "mlx/mlx_lm_benchmark_pr1010_macbook_air_m4_no_delay_thermal_throttling.txt": ("mlx-lm", 3, 0),
    "mlx/mlx_lm_benchmark_pr396_example.txt": ("mlx-lm", 3, 0),
    "mlx/mlx_lm_benchmark_pre_post_pr3077_h100_b200.txt": ("mlx-lm", 24, 0),
    "mlx/mlx_lm_generate_verbose_issue1029_mac_mini_m4pro.txt": ("mlx-lm", 3, 0),
    "nccl_tests/FAILED_h100_2node_alltoall_network_error_v2.17.6.txt": ("nccl-tests", 0, 1),
    "nccl_tests/FAILED_h100_2node_alltoall_truncated_no_results_v2.17.6.txt": ("nccl-tests", 0, 1),
    # nccl-tests: 6 figures per printed row and one avg_busbw per collective
    "nccl_tests/a100_p4d_2node_16gpu_legacy_error_column_mpirun_tagged_NCCL_DEBUG.txt": (
        "nccl-tests",
        181,
        0,
    ),
    "nccl_tests/gh200_2node_2gpu_allreduce_1M-128M_v2.18.2.txt": ("nccl-tests", 49, 0),
    "nccl_tests/gh200_2node_8gpu_allreduce_DEGRADED_no_cxi_hook_v2.17.1.txt": ("nccl-tests", 151, 0),
    "nccl_tests/gh200_2node_8gpu_allreduce_good_cxi_v2.17.1.txt": ("nccl-tests", 151, 0),
    "nccl_tests/h100_10node_1gpu_each_v2.17.8.txt": ("nccl-tests", 305, 0),
    "nccl_tests/h100_10node_8gpu_each_80ranks_v2.17.8.txt": ("nccl-tests", 305, 0),
    "nccl_tests/h100_1node_4gpu_5collectives_v2.17.8.txt": ("nccl-tests", 305, 0),
    "nccl_tests/h100_1node_8gpu_5collectives_v2.17.8.txt": ("nccl-tests", 305, 0),
    "nccl_tests/h100_2node_16ranks_alltoall_v2.17.6.txt": ("nccl-tests", 122, 0),
    "nccl_tests/h100_2node_smoke_allreduce_sendrecv_v2.17.8.txt": ("nccl-tests", 62, 0),
    "vllm_bench/llmperf_summary_anyscale_70b.json": ("llmperf", 65, 0),
    "vllm_bench/llmperf_summary_groq_70b.json": ("llmperf", 65, 0),
    "vllm_bench/sglang_bench_serving_llama31-405b_h200_online_rate_sweep.jsonl": ("sglang", 78, 0),
    "vllm_bench/sglang_bench_serving_llama33-70b_h200_online_rate_sweep.jsonl": ("sglang", 91, 0),
    "vllm_bench/vllm_benchmark_serving_console_output.txt": ("vllm", 16, 0),
    "vllm_bench/vllm_nightly_style_summary_tables_tp8.json": ("vllm", 48, 0),
    "vllm_bench/vllm_serving_llama33-70b_tp4pp2_IB_sharegpt_qpsinf.json": ("vllm", 20, 0),
    "vllm_bench/vllm_serving_llama33-70b_tp4pp2_noIB_sharegpt_qpsinf.json": ("vllm", 20, 0),
    "vllm_bench/vllm_serving_llama33-70b_tp8_sharegpt_qps4.json": ("vllm", 20, 0),
}

# (file pattern, what the refusal must say); the first pattern that matches a file applies.
REFUSED: list[tuple[str, str]] = [
    ("README.md", r"a Markdown document"),
    ("*/SOURCES.md", r"a Markdown document"),
    ("mlx/mlx_lm_BENCHMARKS.md", r"a Markdown document"),
    ("asv_results/django-asv/results/benchmarks.json", r"an asv \(airspeed velocity\) benchmarks\.json"),
    ("asv_results/django-asv/results/*/machine.json", r"an asv \(airspeed velocity\) machine\.json"),
    (
        "asv_results/django-asv/results/*/*.json",
        r"an asv \(airspeed velocity\) results file \(commit [0-9a-f]{8}, environment [\w.-]+\): "
        r"the benchmark history of another tool",
    ),
    ("compose_spec/compose-spec.json", r"a JSON Schema document \(Compose Specification\)"),
    ("github_webhooks/signature_test_vectors.json", r"webhook signature test vectors"),
    ("github_webhooks/*.payload.json", r"a GitHub webhook payload \((?P<event>\w+) event\)"),
    ("nccl_tests/h100_10node_summary_from_repo.csv", r"a CSV summary of nccl-tests logs"),
    ("vllm_bench/aiperf_console_output_readme_example.txt", r"NVIDIA AIPerf's console table"),
    ("vllm_bench/llmperf_individual_responses_groq_70b.json", r"LLMPerf individual responses"),
    ("vllm_bench/*.commands.json", r"a record of the command a vLLM benchmark ran"),
]

FILES = sorted(str(p.relative_to(SHARED_DATA)) for p in SHARED_DATA.rglob("*") if p.is_file())

pytestmark = pytest.mark.skipif(not FILES, reason=f"shared data not found at {SHARED_DATA}")


@functools.cache
def _import(rel: str) -> ImportOutcome | ImportFormatError:
    path = SHARED_DATA / rel
    try:
        return parse("auto", path.read_text(), source_name=Path(rel).name)
    except ImportFormatError as exc:
        return exc


def _refusal_pattern(rel: str) -> str | None:
    return next((want for pattern, want in REFUSED if fnmatch.fnmatch(rel, pattern)), None)


def test_the_tables_name_only_files_that_exist() -> None:
    assert set(IMPORTED) <= set(FILES)
    assert not [rel for rel in IMPORTED if _refusal_pattern(rel) is not None]
    assert len(FILES) == 538


@pytest.mark.parametrize("rel", FILES)
def test_every_shared_file_is_imported_completely_or_refused_with_its_reason(rel: str) -> None:
    got = _import(rel)
    if rel in IMPORTED:
        fmt, n_results, n_failures = IMPORTED[rel]
        assert isinstance(got, ImportOutcome), got
        assert (got.meta["format"], len(got.results), len(got.failures)) == (fmt, n_results, n_failures)
        return
    want = _refusal_pattern(rel)
    assert want is not None, f"{rel} is in neither table: import it or refuse it with its reason"
    assert isinstance(got, ImportFormatError), f"{rel} was imported: {got.meta}"
    assert got.message.startswith("not imported: ")
    found = re.search(want, got.message)
    assert found is not None, got.message
    if "event" in found.groupdict():  # the payload's event is the one GitHub would name
        assert Path(rel).name.split(".")[0] == found["event"]


def test_one_metric_has_one_unit_and_direction_across_every_import() -> None:
    """The results store keeps a metric's unit and direction for good, so every importer must
    give a metric name the same ones."""
    seen: dict[str, tuple[str, str, str]] = {}
    for rel in IMPORTED:
        got = _import(rel)
        assert isinstance(got, ImportOutcome)
        for r in got.results:
            first = seen.setdefault(r.metric, (r.unit, r.direction, rel))
            assert (r.unit, r.direction) == first[:2], (r.metric, rel, first)
