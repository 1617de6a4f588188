"""A machine's (or cluster's) fingerprint, its hardware class, and its stable hash.

The fingerprint records what makes results comparable (chip/GPU model and count, memory,
OS and kernel, driver, CUDA/MLX/torch versions, interconnect, cluster composition) plus a few
volatile observations (hostname, free memory, uptime, device serials). The hash is sha256 of
canonical JSON (sorted keys, no whitespace) of the fingerprint with the volatile keys removed,
so the same machine gets the same hash on every run, and a driver or kernel change gets a new one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from . import parsers
from .sources import RawSources

FINGERPRINT_VERSION = 1

# Keys removed (at any depth) before hashing: they change without the machine changing.
VOLATILE_KEYS = frozenset(
    {
        "hostname",
        "available_bytes",
        "free_bytes",
        "uptime_seconds",
        "collected_at",
        "uuid",
        "pci_bus_id",
        "serial_number",
        "platform_uuid",
        "load_average",
        "agent",
    }
)

_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def normalize_arch(machine: str) -> str:
    return _ARCH.get(machine.lower(), _slug(machine) or "unknown")


def gpu_class(name: str) -> str:
    """The hardware class of an NVIDIA GPU model name as NVML reports it."""
    n = name.upper()
    if "GB10" in n and "GB100" not in n:
        return "dgx-spark"
    if "GH200" in n:
        return "gh200"
    if "GB200" in n:
        return "gb200"
    if "B200" in n:
        return "b200"
    for chip in ("H100", "H200"):
        if chip in n:
            if "NVL" in n:
                return f"{chip.lower()}-nvl"
            if "PCIE" in n:
                return f"{chip.lower()}-pcie"
            return f"{chip.lower()}-sxm"  # "H100 80GB HBM3", "H100 SXM5 ...", "H200"
    if "A100" in n:
        return "a100-pcie" if "PCIE" in n else "a100-sxm"
    return _slug(re.sub(r"^NVIDIA\s+", "", name, flags=re.IGNORECASE)) or "nvidia-gpu"


def apple_class(machine_name: str | None, chip: str) -> str:
    """ "Mac Studio" + "Apple M3 Ultra" -> "mac-studio-m3-ultra"."""
    chip_slug = _slug(re.sub(r"^Apple\s+", "", chip, flags=re.IGNORECASE))
    return f"{_slug(machine_name)}-{chip_slug}" if machine_name else f"apple-{chip_slug}"


def machine_class(fp: Mapping[str, Any]) -> str:
    """GPU model if there are GPUs, else the Apple chip, else `cpu-<arch>`."""
    gpu = fp.get("gpu") or {}
    names = sorted({d["name"] for d in gpu.get("devices", []) if d.get("name")})
    if names:
        return "+".join(sorted({gpu_class(n) for n in names}))
    apple = fp.get("apple") or {}
    chip = apple.get("chip")
    if chip and chip.lower().startswith("apple"):
        return apple_class(apple.get("machine_name"), chip)
    return f"cpu-{fp.get('arch', 'unknown')}"


def build_fingerprint(raw: RawSources) -> dict[str, Any]:
    """Turn one machine's raw outputs into its fingerprint (pure: no I/O)."""
    uname = raw.uname or {}
    fp: dict[str, Any] = {
        "kind": "machine",
        "version": FINGERPRINT_VERSION,
        "arch": normalize_arch(uname.get("machine", "")),
        "os": {"system": uname.get("system"), "kernel": uname.get("release")},
        "hostname": uname.get("node"),
    }
    if raw.os_release:
        release = parsers.parse_os_release(raw.os_release)
        fp["os"].update({"name": release.get("name"), "version": release.get("version_id")})
    if raw.cpuinfo:
        fp["cpu"] = parsers.parse_cpuinfo(raw.cpuinfo)
    if raw.meminfo:
        fp["memory"] = parsers.parse_meminfo(raw.meminfo)
    if raw.uptime:
        fp["uptime_seconds"] = parsers.parse_uptime(raw.uptime)

    apple: dict[str, Any] = {}
    if raw.sysctl:
        ctl = parsers.parse_sysctl(raw.sysctl)
        if ctl.get("machdep.cpu.brand_string"):
            apple["chip"] = ctl["machdep.cpu.brand_string"]
        if ctl.get("hw.memsize", "").isdigit():
            apple["memory_bytes"] = int(ctl["hw.memsize"])
        if ctl.get("hw.model"):
            apple["machine_model"] = ctl["hw.model"]
        cores = {
            k: int(ctl[key])
            for k, key in (
                ("total", "hw.ncpu"),
                ("performance", "hw.perflevel0.physicalcpu"),
                ("efficiency", "hw.perflevel1.physicalcpu"),
            )
            if ctl.get(key, "").isdigit()
        }
        if cores:
            apple["cores"] = cores
    if raw.system_profiler:
        try:
            profile = parsers.parse_system_profiler(raw.system_profiler)
        except (ValueError, AttributeError, IndexError):
            profile = {}
        apple.update({k: v for k, v in profile.items() if v is not None and k != "kernel"})
    if apple:
        if not str(apple.get("chip", "")).lower().startswith("apple"):
            # An Intel Mac: the CPU is all there is.
            fp["cpu"] = {"model": apple.get("chip"), "logical_cpus": apple.get("cores", {}).get("total")}
        fp["apple"] = apple
        if apple.get("memory_bytes"):
            fp.setdefault("memory", {})["total_gib"] = round(apple["memory_bytes"] / 2**30)
        if apple.get("macos_version"):
            fp["os"]["name"] = "macOS"
            fp["os"]["version"] = apple["macos_version"]

    gpu: dict[str, Any] | None = None
    if raw.nvml:
        gpu = parsers.parse_nvml(raw.nvml)
    elif raw.nvidia_smi:
        gpu = parsers.parse_nvidia_smi_csv(raw.nvidia_smi)
    if gpu and gpu["count"]:
        if raw.nvidia_topology:
            topo = parsers.parse_nvidia_topology(raw.nvidia_topology)
            if topo:
                gpu["topology"] = topo
                gpu["nvlink"] = gpu["nvlink"] or topo["nvlink"]
        fp["gpu"] = gpu

    interconnect: dict[str, Any] = {}
    if gpu and gpu.get("count"):
        interconnect["nvlink"] = bool(gpu.get("nvlink"))
    if raw.rdma_ctl is not None:
        interconnect["thunderbolt_rdma"] = parsers.parse_rdma_ctl(raw.rdma_ctl)
    if interconnect:
        fp["interconnect"] = interconnect

    software = {k: v for k, v in sorted((raw.packages or {}).items()) if v}
    if gpu and gpu.get("driver_version"):
        software["nvidia_driver"] = gpu["driver_version"]
    if gpu and gpu.get("cuda_version"):
        software["cuda"] = gpu["cuda_version"]
    fp["software"] = software
    fp["hardware_class"] = machine_class(fp)
    return fp


def stable_fingerprint(fp: Any) -> Any:
    """The fingerprint without its volatile keys (what is hashed and sent to the server)."""
    if isinstance(fp, Mapping):
        return {k: stable_fingerprint(v) for k, v in fp.items() if k not in VOLATILE_KEYS}
    if isinstance(fp, list | tuple):
        return [stable_fingerprint(v) for v in fp]
    return fp


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def fingerprint_hash(fp: Mapping[str, Any]) -> str:
    """sha256 hex of the canonical JSON of the stable part of a fingerprint."""
    return hashlib.sha256(canonical_json(stable_fingerprint(fp)).encode()).hexdigest()


def cluster_class(member_classes: Iterable[str]) -> str:
    """["dgx-spark", "mac-studio-m3-ultra", "mac-studio-m3-ultra"] ->
    "2x mac-studio-m3-ultra + 1x dgx-spark" (most numerous first, then by name)."""
    counts = Counter(member_classes)
    if not counts:
        raise ValueError("a cluster needs at least one member")
    return " + ".join(f"{n}x {cls}" for cls, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def cluster_fingerprint(
    members: Iterable[Mapping[str, Any]], links: Iterable[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """The fingerprint of several machines that run benchmarks together.

    `members`: each `{"name": role, "fingerprint": machine_fingerprint}` (or a bare machine
    fingerprint, named `member-<i>`). Names are stable role labels ("prefill", "mac-a"), not
    hostnames; links refer to them. `links`: each `{"a": name, "b": name, "kind":
    "thunderbolt-rdma" | "ethernet" | "nvlink" | "infiniband" | ..., "gbps": optional number}`;
    links are undirected. Member and link order do not change the result.
    """
    normalized: list[dict[str, Any]] = []
    for i, member in enumerate(members):
        if "fingerprint" in member:
            name = str(member.get("name") or f"member-{i}")
            fp = member["fingerprint"]
        else:
            name, fp = f"member-{i}", member
        if fp.get("kind") == "cluster":
            raise ValueError(f"member {name!r}: a cluster member must be a single machine")
        cls = fp.get("hardware_class") or machine_class(fp)
        stable = stable_fingerprint(fp)
        normalized.append(
            {"name": name, "hardware_class": cls, "fingerprint": stable, "hash": fingerprint_hash(stable)}
        )
    names = [m["name"] for m in normalized]
    dupes = sorted(n for n, c in Counter(names).items() if c > 1)
    if dupes:
        raise ValueError(f"duplicate member names: {', '.join(dupes)}")
    normalized.sort(key=lambda m: (m["hardware_class"], m["hash"], m["name"]))

    norm_links: list[dict[str, Any]] = []
    for i, link in enumerate(links):
        a, b, kind = link.get("a"), link.get("b"), link.get("kind")
        for end in (a, b):
            if end not in names:
                raise ValueError(f"links[{i}]: unknown member {end!r} (members: {', '.join(sorted(names))})")
        if a == b:
            raise ValueError(f"links[{i}]: a link joins two different members")
        if not kind or not isinstance(kind, str):
            raise ValueError(f"links[{i}].kind: required (e.g. thunderbolt-rdma, ethernet, nvlink)")
        lo, hi = sorted((str(a), str(b)))
        entry: dict[str, Any] = {"a": lo, "b": hi, "kind": kind}
        if link.get("gbps") is not None:
            entry["gbps"] = float(link["gbps"])
        norm_links.append(entry)
    norm_links.sort(key=canonical_json)
    return {
        "kind": "cluster",
        "version": FINGERPRINT_VERSION,
        "hardware_class": cluster_class(m["hardware_class"] for m in normalized),
        "size": len(normalized),
        "members": normalized,
        "links": norm_links,
    }


def hardware_class(fp: Mapping[str, Any]) -> str:
    """The class a fingerprint maps to (machine or cluster)."""
    if fp.get("kind") == "cluster":
        return cluster_class(m["hardware_class"] for m in fp.get("members", []))
    return str(fp.get("hardware_class") or machine_class(fp))
