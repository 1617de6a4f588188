"""Hardware detection: parsers on recorded outputs, classes, stable hashes, clusters, the CLI."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest
from bench_runner.cli import main
from bench_runner.detect import (
    RawSources,
    build_fingerprint,
    cluster_class,
    cluster_fingerprint,
    collect,
    fingerprint_hash,
    gpu_class,
    hardware_class,
    load_cluster,
    parsers,
    sources,
    stable_fingerprint,
)

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str) -> RawSources:
    return RawSources.load(FIXTURES / name)


def fp_of(name: str) -> dict[str, Any]:
    return build_fingerprint(load(name))


# -- each kind of machine ---------------------------------------------------------------


def test_x86_cpu_box() -> None:
    fp = fp_of("x86-cpu")
    assert hardware_class(fp) == "cpu-x86_64"
    assert fp["cpu"] == {
        "model": "AMD EPYC 7B13",
        "logical_cpus": 8,
        "physical_cores": 4,
        "sockets": 1,
        "vendor": "AuthenticAMD",
        "isa": ["avx2"],
    }
    assert fp["memory"]["total_gib"] == 31  # 32871916 kB
    assert fp["os"] == {
        "system": "Linux",
        "kernel": "6.1.0-26-cloud-amd64",
        "name": "Debian GNU/Linux",
        "version": "12",
    }
    assert "gpu" not in fp and "interconnect" not in fp
    assert fp["software"] == {"llama-cpp-python": "0.3.16", "torch": "2.8.0"}


def test_dgx_spark_gb10() -> None:
    fp = fp_of("dgx-spark")
    assert hardware_class(fp) == "dgx-spark"
    assert fp["arch"] == "aarch64"
    assert fp["cpu"]["model"] == "10x Cortex-A725 + 10x Cortex-X925"
    assert fp["cpu"]["logical_cpus"] == 20
    gpu = fp["gpu"]
    assert gpu["count"] == 1
    assert gpu["devices"][0]["name"] == "NVIDIA GB10"
    # unified memory: NVML has no framebuffer size for GB10
    assert gpu["devices"][0]["memory_bytes"] is None
    assert gpu["devices"][0]["compute_capability"] == "12.1"
    assert (gpu["driver_version"], gpu["cuda_version"]) == ("580.95.05", "13.0")
    assert gpu["topology"]["nics"] == 4
    assert fp["interconnect"] == {"nvlink": False}
    assert fp["software"]["cuda"] == "13.0"


def test_8x_h100_sxm_node() -> None:
    fp = fp_of("h100-sxm-8x")
    assert hardware_class(fp) == "h100-sxm"
    cpu = fp["cpu"]
    assert (cpu["logical_cpus"], cpu["physical_cores"], cpu["sockets"]) == (224, 112, 2)
    assert "amx_tile" in cpu["isa"]
    gpu = fp["gpu"]
    assert gpu["count"] == 8
    assert {d["name"] for d in gpu["devices"]} == {"NVIDIA H100 80GB HBM3"}
    assert all(d["memory_bytes"] == 81559 * 2**20 for d in gpu["devices"])
    assert all(d["nvlink_active_links"] == 18 for d in gpu["devices"])
    assert gpu["cuda_version"] == "12.4"
    topo = gpu["topology"]
    assert topo["gpu_link_types"] == ["NV18"]
    assert topo["gpu_links"]["GPU3"]["GPU7"] == "NV18"
    assert len(topo["gpu_links"]) == 8 and all(len(v) == 7 for v in topo["gpu_links"].values())
    assert topo["nics"] == 8
    assert fp["interconnect"]["nvlink"] is True
    assert fp["memory"]["total_gib"] == 2015


def test_mac_studio_m3_ultra() -> None:
    fp = fp_of("mac-studio-m3-ultra")
    assert hardware_class(fp) == "mac-studio-m3-ultra"
    apple = fp["apple"]
    assert apple["chip"] == "Apple M3 Ultra"
    assert apple["cores"] == {"total": 32, "performance": 24, "efficiency": 8}
    assert apple["memory_bytes"] == 512 * 2**30
    assert fp["memory"]["total_gib"] == 512
    assert fp["os"] == {"system": "Darwin", "kernel": "25.2.0", "name": "macOS", "version": "26.2"}
    assert fp["interconnect"]["thunderbolt_rdma"] is True
    assert fp["software"]["mlx"] == "0.30.0"
    assert fp["arch"] == "aarch64"


def test_all_fixture_hashes_differ() -> None:
    hashes = {
        fingerprint_hash(fp_of(n)) for n in ("x86-cpu", "dgx-spark", "h100-sxm-8x", "mac-studio-m3-ultra")
    }
    assert len(hashes) == 4


# -- single parsers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("NVIDIA GB10", "dgx-spark"),
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),
        ("NVIDIA H100 PCIe", "h100-pcie"),
        ("NVIDIA H100 NVL", "h100-nvl"),
        ("NVIDIA H200", "h200-sxm"),
        ("NVIDIA GH200 480GB", "gh200"),
        ("NVIDIA B200", "b200"),
        ("NVIDIA A100-SXM4-80GB", "a100-sxm"),
        ("NVIDIA GeForce RTX 4090", "geforce-rtx-4090"),
    ],
)
def test_gpu_class(name: str, expected: str) -> None:
    assert gpu_class(name) == expected


def test_nvidia_smi_csv_fallback_without_nvml() -> None:
    raw = RawSources(
        uname={"system": "Linux", "node": "pcie-box", "release": "6.8.0-45-generic", "machine": "x86_64"},
        nvidia_smi=(
            "0, NVIDIA H100 PCIe, 81559, 560.35.03, 00000000:65:00.0, GPU-aa11, 9.0\n"
            "1, NVIDIA H100 PCIe, 81559, 560.35.03, 00000000:CA:00.0, GPU-bb22, 9.0\n"
        ),
    )
    fp = build_fingerprint(raw)
    assert hardware_class(fp) == "h100-pcie"
    assert fp["gpu"]["count"] == 2
    assert fp["gpu"]["devices"][1]["memory_bytes"] == 81559 * 2**20
    assert fp["software"]["nvidia_driver"] == "560.35.03"


def test_nvidia_smi_csv_not_available_memory() -> None:
    parsed = parsers.parse_nvidia_smi_csv("0, NVIDIA GB10, [N/A], 580.95.05, 0000000F:01:00.0, GPU-x, 12.1\n")
    assert parsed["devices"][0]["memory_bytes"] is None
    assert parsed["devices"][0]["compute_capability"] == "12.1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("enabled\n", True),
        ("RDMA over Thunderbolt: disabled\n", False),
        ("", None),
        ("usage: rdma_ctl", None),
    ],
)
def test_rdma_ctl(text: str, expected: bool | None) -> None:
    assert parsers.parse_rdma_ctl(text) is expected


def test_system_profiler_and_size_units() -> None:
    text = (FIXTURES / "mac-studio-m3-ultra" / "system_profiler.json").read_text()
    parsed = parsers.parse_system_profiler(text)
    assert (parsed["machine_name"], parsed["machine_model"]) == ("Mac Studio", "Mac15,14")
    assert parsed["macos_build"] == "25C56"
    assert parsers.parse_size("96 GB") == 96 * 2**30
    assert parsers.parse_size("nonsense") is None


def test_mac_without_system_profiler_uses_sysctl() -> None:
    raw = load("mac-studio-m3-ultra")
    raw.system_profiler = None
    fp = build_fingerprint(raw)
    assert hardware_class(fp) == "apple-m3-ultra"  # no marketing name without system_profiler
    assert fp["apple"]["cores"]["performance"] == 24


def test_missing_tools_are_not_errors(tmp_path: Path) -> None:
    assert sources.run_tool(["bench-runner-no-such-tool-xyz", "--version"]) is None
    assert sources.read_text(tmp_path / "absent") is None
    assert sources.run_tool(["false"]) is None  # a failing tool is "no output"
    assert build_fingerprint(RawSources())["hardware_class"] == "cpu-unknown"


def test_collect_on_this_machine() -> None:
    raw = collect()  # no GPU, no Apple tools here: everything missing must be fine
    fp = build_fingerprint(raw)
    assert fp["kind"] == "machine"
    if not fp.get("gpu"):
        assert hardware_class(fp).startswith("cpu-")
    assert fp["cpu"]["logical_cpus"] >= 1


def test_record_and_replay_roundtrip(tmp_path: Path) -> None:
    raw = load("h100-sxm-8x")
    raw.save(tmp_path / "rec")
    again = RawSources.load(tmp_path / "rec")
    assert dataclasses.asdict(again) == dataclasses.asdict(raw)


# -- the hash -------------------------------------------------------------------------------


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


def test_hash_is_sha256_of_canonical_json() -> None:
    fp = {"b": 1, "a": {"y": [1, 2], "x": "é"}, "hostname": "ignored"}
    expected = hashlib.sha256(b'{"a":{"x":"\xc3\xa9","y":[1,2]},"b":1}').hexdigest()
    assert fingerprint_hash(fp) == expected


@pytest.mark.parametrize("name", ["x86-cpu", "dgx-spark", "h100-sxm-8x", "mac-studio-m3-ultra"])
def test_hash_ignores_key_order(name: str) -> None:
    fp = fp_of(name)
    rng = random.Random(7)
    shuffled = _shuffled(fp, rng)
    assert list(shuffled) != list(fp) or len(fp) < 2
    assert fingerprint_hash(shuffled) == fingerprint_hash(fp)


def test_hash_ignores_volatile_fields_but_not_comparability_fields() -> None:
    base = load("h100-sxm-8x")
    h = fingerprint_hash(build_fingerprint(base))

    volatile = copy.deepcopy(base)
    volatile.uname["node"] = "another-host"
    assert volatile.meminfo is not None and volatile.uptime is not None and volatile.nvml is not None
    volatile.meminfo = volatile.meminfo.replace("MemAvailable:   2061204880", "MemAvailable:   1000000000")
    volatile.uptime = "5.01 9.99\n"
    for dev in volatile.nvml["devices"]:  # another board of the same model in the same slot
        dev["uuid"] = dev["uuid"][::-1]
    vfp = build_fingerprint(volatile)
    assert vfp["hostname"] == "another-host" and vfp["memory"]["available_bytes"] == 1000000000 * 1024
    assert fingerprint_hash(vfp) == h

    kernel = copy.deepcopy(base)
    kernel.uname["release"] = "5.15.0-126-generic"
    assert fingerprint_hash(build_fingerprint(kernel)) != h

    driver = copy.deepcopy(base)
    assert driver.nvml is not None
    driver.nvml["driver_version"] = "550.127.08"
    assert fingerprint_hash(build_fingerprint(driver)) != h

    fewer = copy.deepcopy(base)
    assert fewer.nvml is not None
    fewer.nvml["devices"] = fewer.nvml["devices"][:4]
    assert fingerprint_hash(build_fingerprint(fewer)) != h


def test_stable_fingerprint_drops_volatile_keys_everywhere() -> None:
    stable = stable_fingerprint(fp_of("mac-studio-m3-ultra"))
    text = json.dumps(stable)
    for key in ("hostname", "serial_number", "uptime_seconds", "available_bytes"):
        assert f'"{key}"' not in text
    assert stable["apple"]["chip"] == "Apple M3 Ultra"


# -- clusters --------------------------------------------------------------------------------


def _cluster_members() -> list[dict[str, Any]]:
    mac = fp_of("mac-studio-m3-ultra")
    mac_b = copy.deepcopy(mac)
    mac_b["hostname"] = "mac-studio-b.local"
    return [
        {"name": "mac-a", "fingerprint": mac},
        {"name": "spark", "fingerprint": fp_of("dgx-spark")},
        {"name": "mac-b", "fingerprint": mac_b},
    ]


LINKS = [
    {"a": "mac-a", "b": "mac-b", "kind": "thunderbolt-rdma", "gbps": 80},
    {"a": "spark", "b": "mac-a", "kind": "ethernet", "gbps": 10},
]


def test_cluster_class_is_sorted_and_deterministic() -> None:
    assert cluster_class(["dgx-spark", "mac-studio-m3-ultra", "mac-studio-m3-ultra"]) == (
        "2x mac-studio-m3-ultra + 1x dgx-spark"
    )
    assert cluster_class(["h100-sxm", "dgx-spark"]) == "1x dgx-spark + 1x h100-sxm"
    with pytest.raises(ValueError):
        cluster_class([])


def test_cluster_fingerprint_independent_of_order() -> None:
    members = _cluster_members()
    one = cluster_fingerprint(members, LINKS)
    assert one["hardware_class"] == "2x mac-studio-m3-ultra + 1x dgx-spark"
    assert hardware_class(one) == one["hardware_class"]
    assert one["size"] == 3
    swapped_links = [
        {"a": link["b"], "b": link["a"], "kind": link["kind"], "gbps": link["gbps"]}
        for link in reversed(LINKS)
    ]
    two = cluster_fingerprint(list(reversed(members)), swapped_links)
    assert fingerprint_hash(one) == fingerprint_hash(two)
    assert fingerprint_hash(cluster_fingerprint(members, LINKS[:1])) != fingerprint_hash(one)
    # member hostnames are volatile: not in the cluster's identity either
    assert "mac-studio-b.local" not in json.dumps(stable_fingerprint(one))


def test_cluster_link_validation() -> None:
    members = _cluster_members()
    with pytest.raises(ValueError, match="unknown member 'nope'"):
        cluster_fingerprint(members, [{"a": "mac-a", "b": "nope", "kind": "ethernet"}])
    with pytest.raises(ValueError, match=r"links\[0\].kind"):
        cluster_fingerprint(members, [{"a": "mac-a", "b": "spark"}])
    with pytest.raises(ValueError, match="duplicate member names"):
        cluster_fingerprint([members[0], members[0]], [])


def test_cluster_file_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("mac-studio-m3-ultra", "dgx-spark"):
        assert main(["detect", "--replay", str(FIXTURES / name)]) == 0
        (tmp_path / f"{name}.json").write_text(capsys.readouterr().out)
    (tmp_path / "cluster.toml").write_text(
        '[[member]]\nname = "mac-a"\nfingerprint = "mac-studio-m3-ultra.json"\n'
        '[[member]]\nname = "mac-b"\nfingerprint = "mac-studio-m3-ultra.json"\n'
        '[[member]]\nname = "spark"\nfingerprint = "dgx-spark.json"\n'
        '[[link]]\na = "mac-a"\nb = "mac-b"\nkind = "thunderbolt-rdma"\ngbps = 80\n'
    )
    assert main(["detect", "--cluster", str(tmp_path / "cluster.toml")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["hardware_class"] == "2x mac-studio-m3-ultra + 1x dgx-spark"
    assert out["fingerprint_hash"] == fingerprint_hash(load_cluster(tmp_path / "cluster.toml"))
    assert len(out["fingerprint"]["links"]) == 1

    (tmp_path / "bad.toml").write_text('[[member]]\nname = "x"\nfingerprint = "missing.json"\n')
    assert main(["detect", "--cluster", str(tmp_path / "bad.toml")]) == 2
    assert "missing.json" in capsys.readouterr().err


def test_cli_replay_prints_class_and_hash(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", "--replay", str(FIXTURES / "h100-sxm-8x"), "--stable"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["hardware_class"] == "h100-sxm"
    assert "hostname" not in out["fingerprint"]
    assert out["fingerprint_hash"] == fingerprint_hash(fp_of("h100-sxm-8x"))
