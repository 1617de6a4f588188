"""Local generation speed: llama.cpp `llama-bench` (JSON array, JSONL, markdown table),
exo bench JSON, and `mlx_lm.benchmark` / `mlx_lm.generate --verbose` output.

Metric names: `prefill_tokens_per_s` (pp tests, prompt_tps), `generation_tokens_per_s` (tg tests,
generation_tps), `tokens_per_s` (combined pp+tg tests), `ttft_ms`, `peak_memory_gb`.

llama-bench: one result per printed test (JSON record or table row), even when a file runs the
same test several times: each run keeps its own repetitions (`samples_ts`) as samples and its
`avg_ts` / `stddev_ts` as stats, and the results store averages the runs of a commit.
"""

from __future__ import annotations

import json
import re
import statistics
from typing import Any

from .base import ImportFormatError, ImportOutcome, merge_duplicates, num
from .records import Direction, FailureRecord, ResultRecord

SUITE = "local_generation"


def _test_name(n_prompt: int, n_gen: int, n_depth: int = 0) -> str:
    if n_prompt and n_gen:
        name = f"pp{n_prompt}+tg{n_gen}"
    elif n_gen:
        name = f"tg{n_gen}"
    else:
        name = f"pp{n_prompt}"
    return f"{name} @ d{n_depth}" if n_depth else name


def _metric_for(test: str) -> str:
    if "+" in test:
        return "tokens_per_s"
    return "generation_tokens_per_s" if test.startswith("tg") else "prefill_tokens_per_s"


# --------------------------------------------------------------------------------- llama-bench

_LB_PARAMS = (
    "backends",
    "n_gpu_layers",
    "n_threads",
    "n_batch",
    "n_ubatch",
    "type_k",
    "type_v",
    "flash_attn",
    "split_mode",
    "use_mmap",
    "gpu_info",
)


def parse_llama_bench_records(records: list[dict[str, Any]]) -> ImportOutcome:
    if not records or not all(isinstance(r, dict) and "avg_ts" in r for r in records):
        raise ImportFormatError("not llama-bench JSON records (no avg_ts)")
    builds = {str(r.get("build_commit")) for r in records}
    out = ImportOutcome()
    for r in records:
        n_prompt, n_gen, n_depth = (
            int(r.get("n_prompt", 0)),
            int(r.get("n_gen", 0)),
            int(r.get("n_depth", 0) or 0),
        )
        test = _test_name(n_prompt, n_gen, n_depth)
        params: dict[str, Any] = {
            "tool": "llama-bench",
            "model": r.get("model_type"),
            "test": test,
            "n_prompt": n_prompt,
            "n_gen": n_gen,
            "n_depth": n_depth,
        }
        params.update({k: r[k] for k in _LB_PARAMS if k in r})
        if len(builds) > 1:
            params["build"] = r.get("build_commit")
        samples = [float(x) for x in r.get("samples_ts") or []]
        stats = {"mean": float(r["avg_ts"])}
        if num(r.get("stddev_ts")) is not None:
            stats["std"] = float(r["stddev_ts"])
        out.results.append(
            ResultRecord(
                SUITE,
                f"llama-bench:{r.get('model_type')}",
                _metric_for(test),
                float(r["avg_ts"]),
                "tok/s",
                "higher",
                params,
                samples=samples or None,
                stats=stats,
            )
        )
    # A test run again (the same settings in another record) is not merged: each run stays a
    # result of its own with its samples_ts and stddev_ts, and the store's point for the commit
    # is their mean with every run's samples.
    out.meta = {"builds": sorted(builds), "records": len(records)}
    return out


_MD_ROW = re.compile(r"^\|(.+)\|\s*$")
_BUILD = re.compile(r"^build:\s*(\S+)\s*\((\d+)\)")
_ENV_TOKEN = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")


def parse_llama_bench_markdown(text: str, source_name: str | None) -> ImportOutcome:
    out = ImportOutcome()
    header: list[str] | None = None
    command_env = ""
    builds = []
    for raw in text.splitlines():
        line = raw.strip()
        if "llama-bench" in line and not line.startswith("|"):
            tokens = line.split()
            start = next((i for i, t in enumerate(tokens) if "llama-bench" in t), 0)
            command_env = " ".join(t for t in tokens[:start] if _ENV_TOKEN.match(t))
            header = None
            continue
        if m := _BUILD.match(line):
            builds.append(m[1])
            header = None
            continue
        m = _MD_ROW.match(line)
        if not m:
            continue
        cells = [c.strip() for c in m[1].split("|")]
        if "t/s" in cells and "test" in cells:
            header = cells
            continue
        if header is None or set("".join(cells)) <= set("-: "):
            continue
        if len(cells) != len(header):
            continue
        row = dict(zip(header, cells, strict=True))
        ts = re.match(r"^([0-9.]+)(?:\s*±\s*([0-9.]+))?", row["t/s"])
        if not ts:
            continue
        test = row["test"]
        params: dict[str, Any] = {"tool": "llama-bench", "model": row.get("model"), "test": test}
        for col in ("backend", "ngl", "threads", "fa", "mmap", "n_batch", "n_ubatch", "type_k", "type_v"):
            if col in row:
                params[col] = row[col]
        if command_env:
            params["env"] = command_env
        stats = {"mean": float(ts[1])}
        if ts[2] is not None:
            stats["std"] = float(ts[2])
        out.results.append(
            ResultRecord(
                SUITE,
                f"llama-bench:{row.get('model')}",
                _metric_for(test),
                float(ts[1]),
                "tok/s",
                "higher",
                params,
                stats=stats,
            )
        )
    if not out.results:
        raise ImportFormatError("no llama-bench markdown table rows (| model | ... | test | t/s |) found")
    out.meta = {"builds": builds}
    return out


def parse_llama_bench(text: str, source_name: str | None) -> ImportOutcome:
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ImportFormatError(f"llama-bench JSON does not parse: {exc}") from exc
        return parse_llama_bench_records(data)
    if stripped.startswith("{"):
        records = []
        for i, line in enumerate(ln for ln in text.splitlines() if ln.strip()):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ImportFormatError(f"llama-bench JSONL line {i + 1} does not parse: {exc}") from exc
        return parse_llama_bench_records(records)
    return parse_llama_bench_markdown(text, source_name)


# ----------------------------------------------------------------------------------------- exo


_EXO_METRICS: tuple[tuple[str, str, str, Direction], ...] = (
    ("prompt_tps", "prefill_tokens_per_s", "tok/s", "higher"),
    ("generation_tps", "generation_tokens_per_s", "tok/s", "higher"),
    ("ttft_ms", "ttft_ms", "ms", "lower"),
    ("accept_fraction", "draft_accept_fraction", "ratio", "higher"),
)


def parse_exo(data: dict[str, Any], source_name: str | None) -> ImportOutcome:
    requests = data.get("requests")
    if not isinstance(requests, list):
        raise ImportFormatError("not an exo bench result (no requests list)")
    model = data.get("model", "unknown")
    bench = f"exo:{model}"
    base = {
        "tool": "exo-bench",
        "model": model,
        "use_drafter": data.get("use_drafter"),
        "draft_mode": data.get("draft_mode"),
        "num_draft_tokens": data.get("num_draft_tokens"),
        "concurrency": data.get("concurrency"),
    }
    base = {k: v for k, v in base.items() if v is not None}
    out = ImportOutcome()
    ok = []
    for req in requests:
        params = {
            **base,
            "prompt_id": req.get("prompt_id"),
            "prompt_tokens": req.get("prompt_tokens"),
            "generation_tokens": req.get("generation_tokens"),
        }
        if req.get("error"):
            out.failures.append(
                FailureRecord(
                    SUITE,
                    bench,
                    "crash",
                    f"exo request {req.get('prompt_id')} run {req.get('run_index')}: {req['error']}",
                    params,
                )
            )
            continue
        ok.append(req)
        for key, metric, unit, direction in _EXO_METRICS:
            v = num(req.get(key))
            if v is not None:
                out.results.append(ResultRecord(SUITE, bench, metric, v, unit, direction, dict(params)))
    out.results = merge_duplicates(out.results)
    gens = [float(r["generation_tps"]) for r in ok if num(r.get("generation_tps")) is not None]
    if gens:
        out.results.append(
            ResultRecord(
                SUITE,
                bench,
                "mean_generation_tokens_per_s",
                statistics.fmean(gens),
                "tok/s",
                "higher",
                dict(base),
                samples=gens,
            )
        )
    out.meta = {"label": data.get("label"), "requests": len(requests), "runs": data.get("runs")}
    return out


# ------------------------------------------------------------------------------------ mlx-lm

_TIMING = re.compile(
    r"Timing with prompt_tokens=(\d+)(?:,| and) generation_tokens=(\d+)(?:, batch_size=(\d+))?"
)
_TPS_LINE = re.compile(
    r"^(?P<label>[^:=]+):\s*prompt_tps=(?P<p>[0-9.]+),\s*generation_tps=(?P<g>[0-9.]+)"
    r"(?:,\s*peak_memory=(?P<m>[0-9.]+))?"
)
_CMD = re.compile(r"mlx_lm[._](?:benchmark|generate)\b(?P<args>.*)$")
_GEN_PROMPT = re.compile(r"^Prompt:\s*(\d+) tokens,\s*([0-9.]+) tokens-per-sec")
_GEN_GEN = re.compile(r"^Generation:\s*(\d+) tokens,\s*([0-9.]+) tokens-per-sec")
_GEN_MEM = re.compile(r"^Peak memory:\s*([0-9.]+) GB")


def _cmd_params(args: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    tokens = args.split()
    for i, t in enumerate(tokens[:-1]):
        nxt = tokens[i + 1]
        if t == "--model":
            out["model"] = nxt
        elif t in ("-p", "--prompt-tokens"):
            out["prompt_tokens"] = int(nxt) if nxt.isdigit() else nxt
        elif t in ("-g", "--generation-tokens"):
            out["generation_tokens"] = int(nxt) if nxt.isdigit() else nxt
        elif t in ("-b", "--batch-size"):
            out["batch_size"] = int(nxt) if nxt.isdigit() else nxt
    return out


def parse_mlx_lm(text: str, source_name: str | None) -> ImportOutcome:
    out = ImportOutcome()
    context: dict[str, Any] = {"tool": "mlx_lm.benchmark"}
    label_ctx = ""
    trials: dict[str, list[float]] = {"p": [], "g": [], "m": []}
    gen: dict[str, float] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if m := _CMD.search(line):
            context = {
                "tool": "mlx_lm.benchmark" if "benchmark" in line else "mlx_lm.generate",
                **_cmd_params(m["args"]),
            }
            label_ctx = ""
            continue
        if m := _TIMING.search(line):
            context["prompt_tokens"] = int(m[1])
            context["generation_tokens"] = int(m[2])
            if m[3]:
                context["batch_size"] = int(m[3])
            continue
        if m := _TPS_LINE.match(line):
            label = m["label"].strip()
            p, g = float(m["p"]), float(m["g"])
            mem = float(m["m"]) if m["m"] else None
            if label.lower().startswith("trial"):
                trials["p"].append(p)
                trials["g"].append(g)
                if mem is not None:
                    trials["m"].append(mem)
                continue
            params = dict(context)
            if label.lower() != "averages":
                params["label"] = label
            if label_ctx:
                params["hardware"] = label_ctx
            use_samples = label.lower() == "averages"
            bench = f"mlx-lm:{params.get('model', 'unknown')}"
            out.results.append(
                ResultRecord(
                    SUITE,
                    bench,
                    "prefill_tokens_per_s",
                    p,
                    "tok/s",
                    "higher",
                    dict(params),
                    samples=list(trials["p"]) if use_samples else None,
                )
            )
            out.results.append(
                ResultRecord(
                    SUITE,
                    bench,
                    "generation_tokens_per_s",
                    g,
                    "tok/s",
                    "higher",
                    dict(params),
                    samples=list(trials["g"]) if use_samples else None,
                )
            )
            if mem is not None:
                out.results.append(
                    ResultRecord(
                        SUITE,
                        bench,
                        "peak_memory_gb",
                        mem,
                        "GB",
                        "lower",
                        dict(params),
                        samples=list(trials["m"]) if use_samples else None,
                    )
                )
            if use_samples:
                trials = {"p": [], "g": [], "m": []}
            continue
        if m := _GEN_PROMPT.match(line):
            gen["prompt_tokens"], gen["p"] = float(m[1]), float(m[2])
            continue
        if m := _GEN_GEN.match(line):
            gen["generation_tokens"], gen["g"] = float(m[1]), float(m[2])
            continue
        if m := _GEN_MEM.match(line):
            gen["m"] = float(m[1])
            continue
        if re.fullmatch(r"[A-Za-z0-9][\w\- ]{0,30}", line) and "=" not in line:
            label_ctx = line  # a bare heading such as "H100" in hand-assembled A/B notes
    if "p" in gen and "g" in gen:
        params = {
            **context,
            "tool": "mlx_lm.generate",
            "prompt_tokens": int(gen["prompt_tokens"]),
            "generation_tokens": int(gen["generation_tokens"]),
        }
        bench = f"mlx-lm:{params.get('model', 'unknown')}"
        out.results.append(
            ResultRecord(SUITE, bench, "prefill_tokens_per_s", gen["p"], "tok/s", "higher", dict(params))
        )
        out.results.append(
            ResultRecord(SUITE, bench, "generation_tokens_per_s", gen["g"], "tok/s", "higher", dict(params))
        )
        if "m" in gen:
            out.results.append(
                ResultRecord(SUITE, bench, "peak_memory_gb", gen["m"], "GB", "lower", dict(params))
            )
    if trials["p"] and not out.results:
        # trials without an Averages line: average them ourselves
        params = dict(context)
        bench = f"mlx-lm:{params.get('model', 'unknown')}"
        for key, metric in (("p", "prefill_tokens_per_s"), ("g", "generation_tokens_per_s")):
            out.results.append(
                ResultRecord(
                    SUITE,
                    bench,
                    metric,
                    statistics.fmean(trials[key]),
                    "tok/s",
                    "higher",
                    dict(params),
                    samples=list(trials[key]),
                )
            )
    if not out.results:
        raise ImportFormatError("no mlx_lm.benchmark (prompt_tps=...) or mlx_lm.generate footer lines found")
    return out
