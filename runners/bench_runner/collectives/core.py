"""Collective definitions, size sweeps, bandwidth formulas and the nccl-tests text layout.

Everything here is pure Python (no torch), so the tests can use it without a distributed backend.
The sweep's data types and the bus factor live in `bench_formats.collectives`, which the
nccl-tests importer shares; they are re-exported here for the harness. Definitions follow NVIDIA
nccl-tests (see METRICS.md):

- algbw = S / 1e9 / t, with S the printed size in bytes and t the time per operation in seconds;
- busbw = algbw x factor: all_reduce 2(n-1)/n; reduce_scatter, all_gather, alltoall (n-1)/n;
  broadcast, reduce, sendrecv 1;
- for the collectives that split the buffer over ranks (all_gather, reduce_scatter, alltoall;
  gather, scatter, hypercube in logs) each rank's count is count / n rounded down to a multiple of
  16 bytes, and the printed size is the total over ranks (per-rank count x type size x n).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bench_formats.collectives import KNOWN_FACTOR_NAMES
from bench_formats.collectives import CollectiveRun as CollectiveRun
from bench_formats.collectives import PlacementResult as PlacementResult
from bench_formats.collectives import SizeRow as SizeRow
from bench_formats.collectives import bus_factor as bus_factor

# --------------------------------------------------------------------------------------------
# Collectives


@dataclass(frozen=True)
class CollectiveSpec:
    name: str  # our name: all_reduce, all_gather, ...
    redop: str  # what nccl-tests prints in the redop column ("sum" or "none")
    root: int  # what nccl-tests prints in the root column (-1 when there is no root)
    in_place_checked: bool = True  # nccl-tests prints N/A for in-place alltoall/sendrecv

    @property
    def program(self) -> str:
        return f"{self.name}_perf"


COLLECTIVES: dict[str, CollectiveSpec] = {
    "all_reduce": CollectiveSpec("all_reduce", "sum", -1),
    "all_gather": CollectiveSpec("all_gather", "none", -1),
    "reduce_scatter": CollectiveSpec("reduce_scatter", "sum", -1),
    "alltoall": CollectiveSpec("alltoall", "none", -1, in_place_checked=False),
    "broadcast": CollectiveSpec("broadcast", "none", 0),
}


def algbw_gbs(size_bytes: int, time_s: float) -> float:
    """Algorithm bandwidth in decimal GB/s."""
    if time_s <= 0:
        return 0.0
    return size_bytes / 1e9 / time_s


def busbw_gbs(collective: str, nranks: int, size_bytes: int, time_s: float) -> float:
    return algbw_gbs(size_bytes, time_s) * bus_factor(collective, nranks)


# --------------------------------------------------------------------------------------------
# Data types (nccl-tests names)

DTYPE_SIZES: dict[str, int] = {
    "int8": 1,
    "uint8": 1,
    "int32": 4,
    "uint32": 4,
    "int64": 8,
    "uint64": 8,
    "half": 2,
    "float": 4,
    "double": 8,
    "bfloat16": 2,
}
DTYPE_ALIASES: dict[str, str] = {
    "char": "int8",
    "int": "int32",
    "float16": "half",
    "fp16": "half",
    "float32": "float",
    "fp32": "float",
    "float64": "double",
    "fp64": "double",
    "bf16": "bfloat16",
}


def normalize_dtype(name: str) -> str:
    key = DTYPE_ALIASES.get(name.lower(), name.lower())
    if key not in DTYPE_SIZES:
        raise ValueError(f"unknown data type {name!r}; one of {sorted(DTYPE_SIZES)}")
    return key


# --------------------------------------------------------------------------------------------
# Sizes

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*$")
_SIZE_MULT = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str | int) -> int:
    """Bytes from nccl-tests style sizes: 8, 1K, 16M, 2G (binary multiples, as nccl-tests)."""
    if isinstance(text, int):
        return text
    m = _SIZE_RE.match(text)
    if not m:
        raise ValueError(f"bad size {text!r} (expected e.g. 8, 64K, 16M, 1G)")
    value = float(m.group(1)) * _SIZE_MULT[m.group(2).lower()]
    return int(value)


def size_sweep(min_bytes: int, max_bytes: int, factor: int = 2, step_bytes: int = 0) -> list[int]:
    """The requested sizes of a sweep, like nccl-tests `-b/-e/-f` (or `-i` step bytes)."""
    if min_bytes <= 0 or max_bytes < min_bytes:
        raise ValueError(f"need 0 < min_bytes <= max_bytes, got {min_bytes}, {max_bytes}")
    if factor <= 1 and step_bytes <= 0:
        raise ValueError("need a factor > 1 or step bytes > 0")
    sizes = []
    size = min_bytes
    while size <= max_bytes:
        sizes.append(size)
        size = size * factor if factor > 1 else size + step_bytes
    return sizes


# nccl-tests' <collective>GetCollByteCount: these give each rank count / nranks elements, rounded
# down to a multiple of 16 bytes (nccl-tests >= 2.13.12, so that every rank's slice stays aligned).
SPLIT_OVER_RANKS = frozenset({"all_gather", "reduce_scatter", "alltoall", "gather", "scatter", "hypercube"})
_SLICE_ALIGN_BYTES = 16


def printed_count(collective: str, requested_bytes: int, dtype: str, nranks: int) -> tuple[int, int]:
    """(count, size in bytes) as nccl-tests prints them for a requested size (`-b/-e/-f` step).

    count is per rank for the collectives in SPLIT_OVER_RANKS, whose printed size is the total
    over ranks; any collective nccl-tests has (KNOWN_FACTOR_NAMES) is accepted.
    """
    if collective not in KNOWN_FACTOR_NAMES:
        raise ValueError(f"unknown collective {collective!r}")
    if nranks < 1:
        raise ValueError(f"nranks must be >= 1, got {nranks}")
    tsize = DTYPE_SIZES[normalize_dtype(dtype)]
    total = requested_bytes // tsize
    if collective not in SPLIT_OVER_RANKS:
        return total, total * tsize
    per_rank = total // nranks
    per_rank -= per_rank % max(1, _SLICE_ALIGN_BYTES // tsize)
    return per_rank, per_rank * nranks * tsize


@dataclass(frozen=True)
class SizePlan:
    """How a requested size maps to buffers for one collective (as nccl-tests computes it)."""

    requested_bytes: int
    count: int  # the printed element count (per rank for the total-over-ranks collectives)
    size_bytes: int  # the printed size
    send_elems: int  # elements in each rank's input buffer
    recv_elems: int  # elements in each rank's output buffer


def plan_size(collective: str, requested_bytes: int, dtype: str, nranks: int) -> SizePlan:
    if collective not in COLLECTIVES:
        raise ValueError(f"unknown collective {collective!r}; one of {sorted(COLLECTIVES)}")
    count, size = printed_count(collective, requested_bytes, dtype, nranks)
    if collective == "all_gather":
        return SizePlan(requested_bytes, count, size, count, count * nranks)
    if collective == "reduce_scatter":
        return SizePlan(requested_bytes, count, size, count * nranks, count)
    if collective == "alltoall":
        return SizePlan(requested_bytes, count, size, count * nranks, count * nranks)
    return SizePlan(requested_bytes, count, size, count, count)


# --------------------------------------------------------------------------------------------
# nccl-tests text layout


def format_float(value: float, width: int) -> str:
    """nccl-tests' adaptive number format: 2 decimals while they fit, then 1, then 0, then exp."""
    digits = 0
    threshold = 1
    while value >= threshold and digits < 40:
        digits += 1
        threshold *= 10
    if digits < width - 2:
        return f"{value:{width}.2f}"
    if digits < width - 1:
        return f"{value:{width}.1f}"
    if digits < width + 1:
        return f"{value:{width}.0f}"
    return f"{value:{width}.1e}"


def format_g(value: float) -> str:
    """C's %g."""
    return f"{value:g}"


def _placement_text(p: PlacementResult, checked: bool) -> str:
    wrong = f"{format_g(float(p.wrong)):>6}" if (checked and p.wrong is not None) else "   N/A"
    return f"  {format_float(p.time_us, 7)}  {format_float(p.algbw, 6)}  {format_float(p.busbw, 6)}  {wrong}"


def render_header(
    run: CollectiveRun,
    *,
    version: str = "bench-runner",
) -> list[str]:
    step = run.step_factor if (run.step_factor or 0) > 1 else run.step_bytes
    step_kind = "factor" if (run.step_factor or 0) > 1 else "bytes"
    lines = [
        f"# nccl-tests version {version} backend={run.backend or 'unknown'}",
        f"# Collective test starting: {run.collective}_perf",
        f"# nThread 1 nGpus 1 minBytes {run.min_bytes or 0} maxBytes {run.max_bytes or 0} "
        f"step: {step or 0}({step_kind}) warmup iters: {run.warmup_iters or 0} iters: {run.iters or 0} "
        f"agg iters: 1 validation: 1 graph: 0",
        "#",
        "# Using devices",
    ]
    for dev in run.devices:
        host = dev.get("hostname", "?")
        lines.append(
            f"#  Rank {dev.get('rank', 0):2d} Group  0 Pid {dev.get('pid', 0):6d} on {host:>10} "
            f"device {dev.get('device', 0):2d} [{dev.get('device_hex', 'cpu')}] {dev.get('device_info', '')}"
        )
    for placement, why in sorted(run.not_measured.items()):
        lines.append(f"# {placement.replace('_', '-')}: not measured ({why})")
    cols = ("size", "count", "type", "redop", "root", "time", "algbw", "busbw", "#wrong")
    units = ("(B)", "(elements)", "", "", "", "(us)", "(GB/s)", "(GB/s)", "")
    lines += ["#", _table_line(("",) * 5, "           out-of-place                       in-place          ")]
    lines.append(_table_line(cols[:5], "  " + _half(cols[5:]) + "  " + _half(cols[5:]) + " "))
    lines.append(_table_line(units[:5], "  " + _half(units[5:]) + "  " + _half(units[5:]) + " "))
    return lines


def _table_line(first: tuple[str, ...], rest: str) -> str:
    size, count, typ, redop, root = first
    return f"# {size:>10}  {count:>12}  {typ:>8}  {redop:>6}  {root:>6}{rest}"


def _half(cols: tuple[str, ...]) -> str:
    time_, alg, bus, wrong = cols
    return f"{time_:>7}  {alg:>6}  {bus:>6}  {wrong:>6}"


def render_row(run: CollectiveRun, row: SizeRow) -> str:
    spec = COLLECTIVES.get(run.collective)
    root = row.root if row.root is not None else -1
    text = f"{row.size:12d}  {row.count:12d}  {row.type:>8}  {row.redop:>6}  {root:6d}"
    if row.out_of_place is not None:
        text += _placement_text(row.out_of_place, True)
    else:
        text += " " * 32
    if row.in_place is not None:
        text += _placement_text(row.in_place, spec.in_place_checked if spec else True)
    return text


def render_footer(run: CollectiveRun) -> list[str]:
    avg = run.avg_busbw if run.avg_busbw is not None else run.computed_avg_busbw()
    oob = run.out_of_bounds or 0
    return [
        f"# {'Out of bounds values':<20} : {oob} {'FAILED' if oob else 'OK'}",
        f"# {'Avg bus bandwidth':<20} : {format_g(avg)} ",
        "#",
        f"# Collective test concluded: {run.collective}_perf",
        "#",
    ]


def render_text(run: CollectiveRun, *, version: str = "bench-runner") -> str:
    """The whole nccl-tests style block for one collective."""
    lines = render_header(run, version=version)
    lines += [render_row(run, row) for row in run.rows]
    lines += render_footer(run)
    return "\n".join(lines) + "\n"
