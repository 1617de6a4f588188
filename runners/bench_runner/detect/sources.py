"""Raw hardware sources: each function reads a file or runs one tool and returns its raw output.

Nothing here interprets the output (that is `parsers.py`, pure and tested on recorded
outputs). A missing tool, file or library is normal on most machines and yields `None`.
`RawSources` bundles everything one machine reports and can be saved to / loaded from a
directory, so a real machine's outputs can be recorded once and replayed in tests.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

TOOL_TIMEOUT_S = 20.0

# Python packages whose versions are part of a machine's software stack.
PACKAGES = ("mlx", "mlx-lm", "torch", "vllm", "llama-cpp-python")


def read_text(path: str | Path) -> str | None:
    """The text of a file, or None if it does not exist or cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def run_tool(argv: list[str], timeout: float = TOOL_TIMEOUT_S) -> str | None:
    """stdout of a tool, or None if it is missing, fails or hangs."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout


def read_uname() -> dict[str, str]:
    u = platform.uname()
    return {
        "system": u.system,
        "node": u.node,
        "release": u.release,
        "version": u.version,
        "machine": u.machine,
    }


def read_cpuinfo() -> str | None:
    return read_text("/proc/cpuinfo")


def read_meminfo() -> str | None:
    return read_text("/proc/meminfo")


def read_os_release() -> str | None:
    return read_text("/etc/os-release") or read_text("/usr/lib/os-release")


def read_uptime() -> str | None:
    return read_text("/proc/uptime")


def read_sysctl() -> str | None:
    """`sysctl` for the keys that describe an Apple machine (`key: value` lines)."""
    return run_tool(
        [
            "sysctl",
            "machdep.cpu.brand_string",
            "hw.memsize",
            "hw.ncpu",
            "hw.physicalcpu",
            "hw.perflevel0.physicalcpu",
            "hw.perflevel1.physicalcpu",
            "hw.model",
        ]
    )


def read_system_profiler() -> str | None:
    return run_tool(["system_profiler", "SPHardwareDataType", "SPSoftwareDataType", "-json"], timeout=60)


def read_rdma_ctl() -> str | None:
    """`rdma_ctl status` (macOS 26.2+, Thunderbolt 5): whether RDMA over Thunderbolt is enabled."""
    return run_tool(["rdma_ctl", "status"])


def read_nvidia_smi() -> str | None:
    """Fallback when NVML's Python bindings are not installed."""
    return run_tool(
        [
            "nvidia-smi",
            "--query-gpu=index,name,memory.total,driver_version,pci.bus_id,uuid,compute_cap",
            "--format=csv,noheader,nounits",
        ]
    )


def read_nvidia_topology() -> str | None:
    return run_tool(["nvidia-smi", "topo", "-m"])


def read_packages() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_nvml() -> dict[str, Any] | None:
    """What NVML reports about the GPUs, as plain JSON-able values (None without NVML)."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return None

    def attempt(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception:  # NVML_ERROR_NOT_SUPPORTED and friends: the value is unknown
            return None

    try:
        raw: dict[str, Any] = {
            "driver_version": _text(pynvml.nvmlSystemGetDriverVersion()),
            "cuda_driver_version": attempt(pynvml.nvmlSystemGetCudaDriverVersion),
            "nvml_version": attempt(lambda: _text(pynvml.nvmlSystemGetNVMLVersion())),
            "devices": [],
            "topology": {},
        }
        count = pynvml.nvmlDeviceGetCount()
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        for index, handle in enumerate(handles):
            memory = attempt(pynvml.nvmlDeviceGetMemoryInfo, handle)
            capability = attempt(pynvml.nvmlDeviceGetCudaComputeCapability, handle)
            pci = attempt(pynvml.nvmlDeviceGetPciInfo, handle)
            links = 0
            for link in range(getattr(pynvml, "NVML_NVLINK_MAX_LINKS", 18)):
                state = attempt(pynvml.nvmlDeviceGetNvLinkState, handle, link)
                if state is None:
                    break
                if state == getattr(pynvml, "NVML_FEATURE_ENABLED", 1):
                    links += 1
            raw["devices"].append(
                {
                    "index": index,
                    "name": _text(pynvml.nvmlDeviceGetName(handle)),
                    "memory_total": None if memory is None else int(memory.total),
                    "uuid": attempt(lambda h=handle: _text(pynvml.nvmlDeviceGetUUID(h))),
                    "pci_bus_id": None if pci is None else _text(pci.busId),
                    "compute_capability": None if capability is None else list(capability),
                    "nvlink_active_links": links,
                }
            )
        for i in range(count):
            for j in range(i + 1, count):
                level = attempt(pynvml.nvmlDeviceGetTopologyCommonAncestor, handles[i], handles[j])
                if level is not None:
                    raw["topology"][f"{i}-{j}"] = int(level)
        return raw
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


@dataclass
class RawSources:
    """Everything one machine's sources returned; None for a source that is not there."""

    uname: dict[str, str] = field(default_factory=dict)
    cpuinfo: str | None = None
    meminfo: str | None = None
    os_release: str | None = None
    uptime: str | None = None
    nvml: dict[str, Any] | None = None
    nvidia_smi: str | None = None
    nvidia_topology: str | None = None
    sysctl: str | None = None
    system_profiler: str | None = None
    rdma_ctl: str | None = None
    packages: dict[str, str | None] = field(default_factory=dict)

    # file name of each field in a recorded directory
    FILES = {
        "uname": "uname.json",
        "cpuinfo": "cpuinfo.txt",
        "meminfo": "meminfo.txt",
        "os_release": "os-release.txt",
        "uptime": "uptime.txt",
        "nvml": "nvml.json",
        "nvidia_smi": "nvidia-smi.csv",
        "nvidia_topology": "nvidia-smi-topo.txt",
        "sysctl": "sysctl.txt",
        "system_profiler": "system_profiler.json",
        "rdma_ctl": "rdma_ctl.txt",
        "packages": "packages.json",
    }
    JSON_FIELDS = frozenset({"uname", "nvml", "packages"})

    def save(self, directory: str | Path) -> None:
        """Record these outputs as files (to make fixtures from a real machine)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            path = out / self.FILES[f.name]
            if f.name in self.JSON_FIELDS:
                path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            else:
                path.write_text(value, encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> RawSources:
        """Outputs recorded by `save` (or written by hand); absent files are absent sources."""
        src = Path(directory)
        values: dict[str, Any] = {}
        for name, filename in cls.FILES.items():
            path = src / filename
            if not path.is_file():
                continue
            text = path.read_text(encoding="utf-8")
            values[name] = json.loads(text) if name in cls.JSON_FIELDS else text
        return cls(**values)


def collect() -> RawSources:
    """Run every source that applies to this operating system."""
    uname = read_uname()
    raw = RawSources(uname=uname, packages=read_packages())
    if uname["system"] == "Linux":
        raw.cpuinfo = read_cpuinfo()
        raw.meminfo = read_meminfo()
        raw.os_release = read_os_release()
        raw.uptime = read_uptime()
    if uname["system"] == "Darwin":
        raw.sysctl = read_sysctl()
        raw.system_profiler = read_system_profiler()
        raw.rdma_ctl = read_rdma_ctl()
    if uname["system"] in ("Linux", "Windows") or os.environ.get("BENCH_RUNNER_PROBE_NVIDIA"):
        raw.nvml = read_nvml()
        if raw.nvml is None:
            raw.nvidia_smi = read_nvidia_smi()
        if raw.nvml is not None or raw.nvidia_smi is not None:
            raw.nvidia_topology = read_nvidia_topology()
    return raw
