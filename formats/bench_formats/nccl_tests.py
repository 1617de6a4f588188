"""nccl-tests stdout -> CollectiveRuns -> records.

Handles: several collectives in one log (`# Collective test starting/concluded`), the 2.18 header
(`unalign`), the pre-2.13 layout (no `root`, an `error` column of max deviations instead of
`#wrong`, no `Collective test starting` line), OpenMPI `--tag-output` prefixes (`[1,0]<stdout>:`),
NCCL_DEBUG and shell noise, and `N/A` in-place checks.

A collective block gives results only when nccl-tests finished it and found it correct: its
`Avg bus bandwidth` line is printed, no `#wrong` is above zero and the `Out of bounds values`
footer does not say FAILED. Any other block (an NCCL error, a log cut short, wrong values) gives
one FailureRecord with the lines it did print as its log excerpt, and no results: never an
average that nccl-tests did not print.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .base import ImportFormatError, ImportOutcome
from .collectives import (
    KNOWN_FACTOR_NAMES,
    SUITE,
    CollectiveRun,
    PlacementResult,
    SizeRow,
    base_params,
    bus_factor,
    run_to_records,
    wrong_message,
)
from .records import FailureClass, FailureRecord

_TAG = re.compile(r"^\[\d+,\d+\]<(?:stdout|stderr)>:")
_STARTING = re.compile(r"^#\s*Collective test starting:\s*(\S+)")
_CONCLUDED = re.compile(r"^#\s*Collective test concluded:\s*(\S+)")
_VERSION = re.compile(r"^#\s*nccl-tests version\s+(\S+)")
_NTHREAD = re.compile(
    r"^#\s*nThread\s+(\d+)\s+nGpus\s+(\d+)\s+minBytes\s+(\d+)\s+maxBytes\s+(\d+)"
    r"\s+step:\s+(\d+)\((factor|bytes)\)\s+warmup iters:\s+(\d+)\s+iters:\s+(\d+)"
)
_RANK = re.compile(
    r"^#\s+Rank\s+(\d+)\s+(?:Group\s+(\d+)\s+)?Pid\s+(\d+)\s+on\s+(\S+)\s+device\s+(\d+)"
    r"\s+\[([^\]]*)\]\s*(.*)$"
)
_OOB = re.compile(r"^#\s*Out of bounds values\s*:\s*(\d+)\s*(\w*)")
_AVG = re.compile(r"^#\s*Avg bus bandwidth\s*:\s*([-+0-9.eE]+|nan|inf)")
_ERROR_HINT = re.compile(
    r"(Test NCCL failure|Test CUDA failure|Test failure|NCCL WARN|Cuda failure|"
    r"out of memory|Segmentation fault|Aborted|error:)",
    re.IGNORECASE,
)
_PROGRAM = re.compile(
    r"\b(all_reduce|all_gather|reduce_scatter|alltoall|broadcast|reduce|sendrecv|gather|"
    r"scatter|hypercube)_perf\b"
)


@dataclass
class _Block:
    name: str | None = None
    version: str | None = None
    header: dict[str, int] = field(default_factory=dict)
    ranks: list[dict[str, Any]] = field(default_factory=list)
    has_root: bool = True
    legacy: bool = False
    in_table: bool = False
    rows: list[SizeRow] = field(default_factory=list)
    avg: float | None = None
    oob: int | None = None
    oob_failed: bool = False
    concluded: bool = False
    printed: list[str] = field(default_factory=list)  # table header, rows and footer, as printed
    errors: list[str] = field(default_factory=list)
    start_line: int = 0


def _clean(line: str) -> str:
    return _TAG.sub("", line.rstrip("\r\n"))


def _parse_wrong(token: str, legacy: bool) -> tuple[int | None, float | None]:
    if token.upper() == "N/A":
        return None, None
    value = float(token)
    if legacy:
        return None, value
    return int(value), None


def _parse_row(tokens: list[str], block: _Block) -> SizeRow | None:
    head = 5 if block.has_root else 4
    if len(tokens) not in (head + 4, head + 8):
        return None
    try:
        size, count = int(tokens[0]), int(tokens[1])
        root = int(tokens[4]) if block.has_root else None
        halves = []
        for i in range(head, len(tokens), 4):
            wrong, err = _parse_wrong(tokens[i + 3], block.legacy)
            halves.append(
                PlacementResult(float(tokens[i]), float(tokens[i + 1]), float(tokens[i + 2]), wrong, err)
            )
    except ValueError:
        return None
    oop = halves[0] if len(halves) == 2 else None
    ip = halves[-1]
    return SizeRow(size, count, tokens[2], tokens[3], root, oop, ip)


def _split_blocks(text: str) -> tuple[list[_Block], list[str]]:
    blocks: list[_Block] = []
    stray_errors: list[str] = []
    cur: _Block | None = None
    pending_version: str | None = None

    def new_block(lineno: int) -> _Block:
        nonlocal pending_version
        b = _Block(version=pending_version, start_line=lineno)
        pending_version = None
        blocks.append(b)
        return b

    for lineno, raw in enumerate(text.splitlines()):
        line = _clean(raw)
        s = line.strip()
        if not s:
            continue
        if m := _VERSION.match(s):
            pending_version = m.group(1)
            continue
        if m := _STARTING.match(s):
            cur = new_block(lineno)
            cur.name = m.group(1)
            continue
        if m := _NTHREAD.match(s):
            if cur is None or cur.header or cur.rows or cur.concluded:
                cur = new_block(lineno)
            cur.header = {
                "nthread": int(m[1]),
                "ngpus": int(m[2]),
                "min_bytes": int(m[3]),
                "max_bytes": int(m[4]),
                "step": int(m[5]),
                "step_is_factor": int(m[6] == "factor"),
                "warmup": int(m[7]),
                "iters": int(m[8]),
            }
            continue
        if cur is None:
            if _ERROR_HINT.search(s) and "NCCL INFO" not in s:
                stray_errors.append(s)
            continue
        if m := _RANK.match(s):
            cur.ranks.append(
                {
                    "rank": int(m[1]),
                    "group": int(m[2] or 0),
                    "pid": int(m[3]),
                    "hostname": m[4],
                    "device": int(m[5]),
                    "device_hex": m[6],
                    "device_info": m[7].strip(),
                }
            )
            continue
        if s.startswith("#") and "size" in s and "count" in s and ("#wrong" in s or "error" in s):
            cols = s.lstrip("#").split()
            cur.has_root = "root" in cols
            cur.legacy = "error" in cols and "#wrong" not in cols
            cur.in_table = True
            cur.printed.append(s)
            continue
        if cur.in_table and s.startswith("#") and "(B)" in s:  # the units line under the header
            cur.printed.append(s)
            continue
        if m := _OOB.match(s):
            cur.oob = int(m[1])
            cur.oob_failed = m[2].upper() == "FAILED"
            cur.in_table = False
            cur.printed.append(s)
            continue
        if m := _AVG.match(s):
            cur.avg = float(m[1])
            cur.printed.append(s)
            continue
        if m := _CONCLUDED.match(s):
            cur.concluded = True
            cur.in_table = False
            if cur.name is None:
                cur.name = m.group(1)
            continue
        if s.startswith("#"):
            continue
        if cur.in_table and s[0].isdigit():
            row = _parse_row(s.split(), cur)
            if row is not None:
                cur.rows.append(row)
                cur.printed.append(s)
                continue
        if _ERROR_HINT.search(s) and "NCCL INFO" not in s:
            cur.errors.append(s)
    return blocks, stray_errors


def _infer_name(block: _Block, text: str, source_name: str | None) -> str:
    if block.name:
        return block.name
    programs = set(_PROGRAM.findall(text)) | set(_PROGRAM.findall(source_name or ""))
    if len(programs) == 1:
        return f"{programs.pop()}_perf"
    # From the printed busbw/algbw factor and the rank count.
    n = len(block.ranks) or 1
    for row in block.rows:
        for _, p in row.placements():
            if p.algbw >= 1.0:
                ratio = p.busbw / p.algbw
                candidates = [c for c in KNOWN_FACTOR_NAMES if abs(bus_factor(c, n) - ratio) < 0.02]
                if candidates:
                    if row.redop != "none":
                        pick = (
                            "all_reduce"
                            if "all_reduce" in candidates
                            else ("reduce_scatter" if "reduce_scatter" in candidates else candidates[0])
                        )
                    else:
                        pick = "all_gather" if "all_gather" in candidates else candidates[0]
                    return f"{pick}_perf"
    return "unknown_perf"


def _classify(errors: list[str]) -> FailureClass:
    joined = " ".join(errors).lower()
    if "out of memory" in joined:
        return "oom"
    if any(w in joined for w in ("timeout", "timed out", "time limit")):
        return "timeout"
    return "crash"


def _excerpt(block: _Block) -> str | None:
    lines = block.printed + block.errors[-10:]
    return "\n".join(lines) or None


def _block_failure(block: _Block, run: CollectiveRun, name: str, is_last: bool) -> FailureRecord | None:
    """The FailureRecord for a block that printed rows but must not give results, else None."""
    params = base_params(run)
    wrong = wrong_message(run, name)
    if wrong is not None or block.oob_failed:
        msg = wrong or f"{name} over {run.nranks} ranks: the out-of-bounds check FAILED"
        return FailureRecord(SUITE, run.collective, "wrong_result", msg, params, _excerpt(block))
    if block.avg is not None:
        return None
    last = block.rows[-1].size
    planned = f" of {block.header['max_bytes']} B" if "max_bytes" in block.header else ""
    cut = (
        f"{name}: output ends after {len(block.rows)} rows (up to {last} B{planned}) "
        "without 'Avg bus bandwidth'"
    )
    cls: FailureClass
    if block.errors:
        cls = _classify(block.errors)
        msg = f"{cut}: {block.errors[0]}"
    elif is_last:
        # Nothing more was printed: the run was killed (a job time limit) or hung.
        cls, msg = "timeout", f"{cut}; no error printed (killed or hung)"
    else:
        # Later collectives ran, so this process ended early without a word.
        cls, msg = "crash", f"{cut}; no error printed, the next test started"
    return FailureRecord(SUITE, run.collective, cls, msg, params, _excerpt(block))


def _run_of(block: _Block, collective: str, nranks: int) -> CollectiveRun:
    return CollectiveRun(
        collective=collective,
        nranks=nranks,
        dtype=block.rows[0].type,
        rows=block.rows,
        avg_busbw=block.avg,
        warmup_iters=block.header.get("warmup"),
        iters=block.header.get("iters"),
        min_bytes=block.header.get("min_bytes"),
        max_bytes=block.header.get("max_bytes"),
        step_factor=block.header.get("step") if block.header.get("step_is_factor") else None,
        step_bytes=None if block.header.get("step_is_factor") else block.header.get("step"),
        backend="nccl",
        devices=block.ranks,
        out_of_bounds=block.oob,
        version=block.version,
        legacy_error_column=block.legacy,
    )


def parse_runs(text: str, source_name: str | None = None) -> tuple[list[CollectiveRun], list[FailureRecord]]:
    """The complete, correct collective runs of a log, and a FailureRecord for every other block."""
    blocks, stray = _split_blocks(text)
    if not blocks:
        raise ImportFormatError(
            "no nccl-tests output found (no '# nThread' or 'Collective test starting' line)"
        )
    runs: list[CollectiveRun] = []
    failures: list[FailureRecord] = []
    for i, b in enumerate(blocks):
        name = _infer_name(b, text, source_name)
        collective = name.removesuffix("_perf")
        nranks = len(b.ranks) or (b.header.get("nthread", 1) * b.header.get("ngpus", 1))
        if b.rows:
            run = _run_of(b, collective, nranks)
            failure = _block_failure(b, run, name, is_last=i == len(blocks) - 1)
            if failure is None:
                runs.append(run)
            else:
                failures.append(failure)
            continue
        params = {"collective": collective, "nranks": nranks, "backend": "nccl"}
        errs = b.errors or stray
        if errs:
            msg = f"{name} failed before any result: {errs[0]}"
            cls: FailureClass = _classify(errs)
        else:
            msg = f"{name}: log ends after the header/device list with no results (hung or killed)"
            cls = "timeout"
        failures.append(FailureRecord(SUITE, collective, cls, msg, params, "\n".join(errs[-10:]) or None))
    return runs, failures


def parse(text: str, source_name: str | None = None) -> ImportOutcome:
    runs, failures = parse_runs(text, source_name)
    out = ImportOutcome(failures=list(failures))
    for run in runs:
        res, fail = run_to_records(run)
        out.results += res
        out.failures += fail
    out.meta = {
        "collectives": [
            {
                "collective": r.collective,
                "nranks": r.nranks,
                "dtype": r.dtype,
                "rows": len(r.rows),
                "avg_busbw": r.avg_busbw,
                "version": r.version,
                "legacy": r.legacy_error_column,
                "hosts": sorted({d["hostname"] for d in r.devices}),
            }
            for r in runs
        ],
    }
    return out


def looks_like(text: str) -> bool:
    head = text[:200_000]
    return bool(re.search(r"#\s*(nThread \d+ nGpus|Collective test starting:|Avg bus bandwidth)", head))
