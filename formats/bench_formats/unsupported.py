"""Files that look like something we know but do not import: each is refused with what it is
and why, instead of a bare "cannot tell the format".

`describe(text, filename)` returns that sentence, or None for input we do not recognise.
"""

from __future__ import annotations

import json
import re
from typing import Any

_ASV_RESULT_KEYS = {"commit_hash", "env_name", "results"}
_ASV_MACHINE_KEYS = {"machine", "version"}
_WEBHOOK_EVENTS = ("workflow_run", "workflow_job", "check_suite", "check_run", "pull_request", "release")
_MARKDOWN_HEADING = re.compile(r"^#{1,6} \S", re.MULTILINE)
_MARKDOWN_FEATURES = (
    re.compile(r"^```", re.MULTILINE),  # code fences
    re.compile(r"^\|[^\n]*\|\s*\n\|\s*:?-{3,}", re.MULTILINE),  # a table under its header
    re.compile(r"\]\([^)\s]+\)"),  # links
    re.compile(r"^#{2,6} \S", re.MULTILINE),  # second-level headings
    re.compile(r"^- \S", re.MULTILINE),  # bullet lists
)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _webhook_event(data: dict[str, Any]) -> str | None:
    if "zen" in data and "hook_id" in data:
        return "ping"
    if "ref" in data and "commits" in data and "pusher" in data:
        return "push"
    if "repository" not in data:
        return None
    return next((e for e in _WEBHOOK_EVENTS if e in data), None)


def _describe_json(data: Any) -> str | None:
    if isinstance(data, list):
        if data and isinstance(data[0], dict) and "ttft_s" in data[0] and "inter_token_latency_s" in data[0]:
            return (
                "LLMPerf individual responses (one record per request): not imported, because "
                "LLMPerf's summary JSON of the same run holds the run's statistics; import that file"
            )
        return None
    if not isinstance(data, dict):
        return None
    keys = set(data)
    if keys >= _ASV_RESULT_KEYS and "result_columns" in keys:
        return (
            f"an asv (airspeed velocity) results file (commit {str(data['commit_hash'])[:8]}, "
            f"environment {data['env_name']}): the benchmark history of another tool, stored by its "
            "own commits and environments; asv histories are not imported"
        )
    definitions = [v for k, v in data.items() if k != "version"]
    if definitions and all(isinstance(v, dict) and "type" in v and "unit" in v for v in definitions):
        return (
            "an asv (airspeed velocity) benchmarks.json: the list of asv's benchmark definitions, "
            "with no measurements; asv histories are not imported"
        )
    if keys == _ASV_MACHINE_KEYS or ({"machine", "arch", "cpu"} <= keys and "version" in keys):
        return "an asv (airspeed velocity) machine.json: a machine description, with no measurements"
    event = _webhook_event(data)
    if event is not None:
        return (
            f"a GitHub webhook payload ({event} event): GitHub sends these to "
            "POST /api/v1/github/webhook; they hold no benchmark results"
        )
    if "vectors" in data and all(isinstance(v, dict) and "secret" in v for v in data["vectors"]):
        return "webhook signature test vectors (secrets, payloads and HMAC signatures): not benchmark output"
    if "$schema" in data:
        title = f" ({data['title']})" if isinstance(data.get("title"), str) else ""
        return f"a JSON Schema document{title}: a schema, not benchmark output"
    if "client_command" in data:
        return (
            "a record of the command a vLLM benchmark ran (client_command), with no results: "
            "import the result JSON that run saved"
        )
    return None


def _describe_csv(text: str) -> str | None:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) < 2:
        return None
    header = lines[0].split(",")
    if len(header) < 3 or any(len(ln.split(",")) != len(header) for ln in lines[1:]):
        return None
    if any("bus_bw" in h or "busbw" in h for h in header):
        return (
            "a CSV summary of nccl-tests logs (" + ",".join(header[:6]) + ", ...): averages another "
            "parser derived, not nccl-tests output; import the nccl-tests logs themselves"
        )
    return (
        "a CSV table (" + ",".join(header[:6]) + ", ...): no importer reads CSV; import the "
        "benchmark tool's own output"
    )


def _describe_markdown(text: str) -> str | None:
    if not _MARKDOWN_HEADING.search(text):
        return None
    if not any(feature.search(text) for feature in _MARKDOWN_FEATURES):
        return None
    return (
        "a Markdown document (headings, prose, tables): documentation or notes, not the output of "
        "a benchmark tool; import the tool's own output file"
    )


def describe(text: str, filename: str | None = None) -> str | None:
    """What `text` is, and why it is not imported; None when we do not recognise it."""
    stripped = text.lstrip()
    if stripped[:1] in "[{":
        found = _describe_json(_json(stripped))
        if found is not None:
            return found
    if "AIPerf" in text and "┃" in text:
        return (
            "NVIDIA AIPerf's console table: not imported, because its TTFT skips empty first "
            "chunks, its 'Inter Token Latency' is a per-request (latency - TTFT) / (tokens - 1), and "
            "the table rounds every figure for display; there is no AIPerf importer yet"
        )
    return _describe_csv(stripped) or _describe_markdown(text)
