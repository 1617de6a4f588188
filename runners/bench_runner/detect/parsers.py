"""Pure parsers: raw tool output in, plain dicts out. No I/O, so tests feed recorded outputs."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from typing import Any

# (implementer, part) of Arm cores seen in AI machines, as /proc/cpuinfo reports them.
ARM_PARTS: dict[tuple[str, str], str] = {
    ("0x41", "0xd08"): "Cortex-A72",
    ("0x41", "0xd0b"): "Cortex-A76",
    ("0x41", "0xd0c"): "Neoverse-N1",
    ("0x41", "0xd40"): "Neoverse-V1",
    ("0x41", "0xd49"): "Neoverse-N2",
    ("0x41", "0xd4f"): "Neoverse-V2",
    ("0x41", "0xd84"): "Neoverse-V3",
    ("0x41", "0xd85"): "Cortex-X925",
    ("0x41", "0xd87"): "Cortex-A725",
    ("0xc0", "0xac3"): "Ampere-1",
}

_SIZE_UNITS = {"B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40}


def _blocks(text: str) -> list[dict[str, str]]:
    """/proc/cpuinfo-style `key : value` blocks separated by blank lines."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = line.partition(":")
        if sep:
            current[key.strip()] = value.strip()
    if current:
        blocks.append(current)
    return blocks


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """CPU model, logical CPUs, physical cores and sockets from /proc/cpuinfo (x86 and Arm)."""
    processors = [b for b in _blocks(text) if "processor" in b and b["processor"].isdigit()]
    result: dict[str, Any] = {
        "model": None,
        "logical_cpus": len(processors),
        "physical_cores": None,
        "sockets": None,
    }
    if not processors:
        return result
    first = processors[0]
    if "model name" in first:  # x86 (and some Arm kernels)
        models = Counter(p.get("model name", "") for p in processors)
        result["model"] = " + ".join(sorted(models)) if len(models) > 1 else next(iter(models))
    elif "CPU part" in first:
        names = Counter(
            ARM_PARTS.get(
                (p.get("CPU implementer", "").lower(), p.get("CPU part", "").lower()),
                f"arm-{p.get('CPU implementer', '?')}-{p.get('CPU part', '?')}",
            )
            for p in processors
        )
        result["model"] = " + ".join(
            f"{count}x {name}" for name, count in sorted(names.items(), key=lambda kv: (-kv[1], kv[0]))
        )
    cores = {(p.get("physical id", "0"), p["core id"]) for p in processors if "core id" in p}
    sockets = {p["physical id"] for p in processors if "physical id" in p}
    # Arm kernels list neither: every processor is a core (no SMT on these parts), one socket.
    result["physical_cores"] = len(cores) if cores else len(processors)
    result["sockets"] = len(sockets) if sockets else 1
    if "vendor_id" in first:
        result["vendor"] = first["vendor_id"]
    flags = first.get("flags", "").split()
    isa = [f for f in ("avx2", "avx512f", "amx_tile") if f in flags]
    if isa:
        result["isa"] = isa
    return result


def parse_meminfo(text: str) -> dict[str, int]:
    """Total memory in GiB (stable) and available memory in bytes (volatile)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"^(\w+):\s+(\d+)\s*(kB)?", line)
        if m:
            values[m.group(1)] = int(m.group(2)) * (1024 if m.group(3) else 1)
    out: dict[str, int] = {}
    if "MemTotal" in values:
        # Whole GiB: MemTotal moves by a few MB with firmware/kernel reservations.
        out["total_gib"] = round(values["MemTotal"] / 2**30)
    if "MemAvailable" in values:
        out["available_bytes"] = values["MemAvailable"]
    return out


def parse_os_release(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key in ("ID", "NAME", "VERSION_ID", "PRETTY_NAME"):
            out[key.lower()] = value.strip().strip('"')
    return out


def parse_uptime(text: str) -> float | None:
    try:
        return float(text.split()[0])
    except (IndexError, ValueError):
        return None


def cuda_version_string(version: int | None) -> str | None:
    """NVML's integer CUDA driver version (12040) as "12.4"."""
    if not version:
        return None
    return f"{version // 1000}.{(version % 1000) // 10}"


def parse_nvml(raw: dict[str, Any]) -> dict[str, Any]:
    devices = [
        {
            "name": d.get("name"),
            "memory_bytes": d.get("memory_total"),
            "compute_capability": (
                ".".join(str(x) for x in d["compute_capability"]) if d.get("compute_capability") else None
            ),
            "nvlink_active_links": d.get("nvlink_active_links") or 0,
            "uuid": d.get("uuid"),
            "pci_bus_id": d.get("pci_bus_id"),
        }
        for d in sorted(raw.get("devices", []), key=lambda d: d.get("index", 0))
    ]
    return {
        "vendor": "nvidia",
        "count": len(devices),
        "driver_version": raw.get("driver_version"),
        "cuda_version": cuda_version_string(raw.get("cuda_driver_version")),
        "devices": devices,
        "nvlink": any(d["nvlink_active_links"] > 0 for d in devices),
    }


def _int_or_none(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def parse_nvidia_smi_csv(text: str) -> dict[str, Any]:
    """`nvidia-smi --query-gpu=index,name,memory.total,driver_version,pci.bus_id,uuid,compute_cap
    --format=csv,noheader,nounits` (memory in MiB; `[N/A]` where unsupported, as on GB10)."""
    devices: list[dict[str, Any]] = []
    driver = None
    for row in csv.reader(io.StringIO(text)):
        if len(row) < 7:
            continue
        index, name, memory, driver_version, bus_id, uuid, cap = (c.strip() for c in row[:7])
        mib = _int_or_none(memory)
        driver = driver_version or driver
        devices.append(
            {
                "index": _int_or_none(index) or 0,
                "name": name,
                "memory_bytes": None if mib is None else mib * 2**20,
                "compute_capability": cap if re.fullmatch(r"\d+\.\d+", cap) else None,
                "nvlink_active_links": 0,
                "uuid": uuid,
                "pci_bus_id": bus_id,
            }
        )
    devices.sort(key=lambda d: d["index"])
    for d in devices:
        del d["index"]
    return {
        "vendor": "nvidia",
        "count": len(devices),
        "driver_version": driver,
        "cuda_version": None,
        "devices": devices,
        "nvlink": False,
    }


def parse_nvidia_topology(text: str) -> dict[str, Any]:
    """`nvidia-smi topo -m`: the GPU-to-GPU link matrix (NV18, SYS, PIX, ...) and NICs."""
    lines = text.splitlines()
    header: list[str] | None = None
    rows: dict[str, list[str]] = {}
    for line in lines:
        if header is None:
            cols = [c.strip() for c in line.split("\t")]
            if any(c.startswith("GPU") for c in cols):
                header = cols
            continue
        if not line.strip() or line.lstrip().startswith("Legend"):
            break
        cols = [c.strip() for c in line.split("\t")]
        if re.fullmatch(r"(GPU|NIC)\d+", cols[0]):
            rows[cols[0]] = cols
    if header is None:
        return {}
    gpus = [h for h in header if re.fullmatch(r"GPU\d+", h)]
    nics = [h for h in header if re.fullmatch(r"NIC\d+", h)]
    matrix: dict[str, dict[str, str]] = {}
    for gpu in gpus:
        row = rows.get(gpu)
        if row is None:
            continue
        matrix[gpu] = {
            other: row[header.index(other)]
            for other in gpus
            if other != gpu and header.index(other) < len(row)
        }
    link_types = sorted({v for links in matrix.values() for v in links.values()})
    return {
        "gpu_links": matrix,
        "gpu_link_types": link_types,
        "nvlink": any(t.startswith("NV") for t in link_types),
        "nics": len(nics),
    }


def parse_sysctl(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def parse_size(text: str) -> int | None:
    """ "512 GB" -> bytes (system_profiler reports binary units)."""
    m = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?B)\s*", text or "")
    if not m:
        return None
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])


def parse_system_profiler(text: str) -> dict[str, Any]:
    """`system_profiler SPHardwareDataType SPSoftwareDataType -json` on a Mac."""
    data = json.loads(text)
    hw = (data.get("SPHardwareDataType") or [{}])[0]
    sw = (data.get("SPSoftwareDataType") or [{}])[0]
    out: dict[str, Any] = {
        "chip": hw.get("chip_type") or hw.get("cpu_type"),
        "machine_name": hw.get("machine_name"),
        "machine_model": hw.get("machine_model"),
        "memory_bytes": parse_size(hw.get("physical_memory", "")),
        "serial_number": hw.get("serial_number"),
    }
    m = re.fullmatch(r"proc (\d+):(\d+):(\d+)(?::\d+)?", hw.get("number_processors", ""))
    if m:
        out["cores"] = {
            "total": int(m.group(1)),
            "performance": int(m.group(2)),
            "efficiency": int(m.group(3)),
        }
    elif str(hw.get("number_processors", "")).isdigit():
        out["cores"] = {"total": int(hw["number_processors"])}
    os_version = sw.get("os_version", "")
    m = re.match(r"macOS\s+([\d.]+)(?:\s+\((\w+)\))?", os_version)
    if m:
        out["macos_version"] = m.group(1)
        if m.group(2):
            out["macos_build"] = m.group(2)
    if sw.get("kernel_version"):
        out["kernel"] = sw["kernel_version"]
    return out


def parse_rdma_ctl(text: str) -> bool | None:
    """`rdma_ctl status` -> True (enabled), False (disabled), None (unrecognised)."""
    words = set(re.findall(r"[a-z]+", text.lower()))
    if "disabled" in words:
        return False
    if "enabled" in words:
        return True
    return None
