"""Two "hosts" as two Linux network namespaces joined by a veth pair (10.x addresses we create).

The ranks can only rendezvous over the veth link: each namespace has its own loopback and no
other route. Skips with the exact reason when the sandbox does not allow namespaces.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from bench_runner.collectives.launcher import HostSpec, build_rank_commands, run_hosts

pytest.importorskip("torch")

IFACE = "benchnet0"


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)


@pytest.fixture
def two_namespaces() -> Iterator[list[HostSpec]]:
    if shutil.which("ip") is None:
        pytest.skip("iproute2 `ip` not installed (apt-get install -y iproute2)")
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    tag = uuid.uuid4().hex[:6]
    ns = [f"brc{tag}a", f"brc{tag}b"]
    veth = [f"vb{tag}a", f"vb{tag}b"]
    addrs = ["10.213.77.1", "10.213.77.2"]
    created: list[str] = []
    try:
        for name in ns:
            r = _ip("netns", "add", name)
            if r.returncode != 0:
                pytest.skip(f"`ip netns add` refused by the sandbox: {r.stderr.strip()}")
            created.append(name)
        steps = [
            ("link", "add", veth[0], "type", "veth", "peer", "name", veth[1]),
            ("link", "set", veth[0], "netns", ns[0]),
            ("link", "set", veth[1], "netns", ns[1]),
        ]
        for i in range(2):
            # the same interface name in both "hosts", so one GLOO_SOCKET_IFNAME serves every rank
            steps += [
                ("-n", ns[i], "link", "set", veth[i], "name", IFACE),
                ("-n", ns[i], "addr", "add", f"{addrs[i]}/24", "dev", IFACE),
                ("-n", ns[i], "link", "set", IFACE, "up"),
                ("-n", ns[i], "link", "set", "lo", "up"),
            ]
        for step in steps:
            r = _ip(*step)
            if r.returncode != 0:
                pytest.skip(f"`ip {' '.join(step)}` refused by the sandbox: {r.stderr.strip()}")
        ping = subprocess.run(
            ["ip", "netns", "exec", ns[0], "ping", "-c", "1", "-W", "2", addrs[1]],
            capture_output=True,
            text=True,
            timeout=20,
        )
        if ping.returncode != 0 and shutil.which("ping"):
            pytest.skip(f"veth link does not pass traffic: {ping.stdout.strip()} {ping.stderr.strip()}")
        yield [HostSpec(ns[0], addrs[0], 1), HostSpec(ns[1], addrs[1], 1)]
    finally:
        for name in created:  # deleting a namespace deletes its end of the veth pair
            _ip("netns", "del", name)


def test_netns_commands_are_per_namespace() -> None:
    hosts = [HostSpec("nsA", "10.9.0.1", 1), HostSpec("nsB", "10.9.0.2", 1)]
    cmds = build_rank_commands(
        hosts, ["all_reduce"], master_port=29999, transport="netns", iface="veth0", python="/usr/bin/python3"
    )
    assert cmds[1].argv[:5] == ["ip", "netns", "exec", "nsB", "env"]
    assert "MASTER_ADDR=10.9.0.1" in cmds[1].argv and "RANK=1" in cmds[1].argv
    assert "GLOO_SOCKET_IFNAME=veth0" in cmds[0].argv
    assert cmds[0].argv[-4:] == ["/usr/bin/python3", "-m", "bench_runner.collectives.worker", "all_reduce"]


def test_all_reduce_across_two_namespaces(two_namespaces: list[HostSpec]) -> None:
    hosts = two_namespaces
    text, runs = run_hosts(
        hosts,
        ["all_reduce", "-b", "8", "-e", "64K", "-f", "8", "-n", "3", "-w", "1"],
        transport="netns",
        master_port=29611,
        timeout=120,
        iface=IFACE,
    )
    (run,) = runs
    assert run.nranks == 2
    assert all(p.wrong == 0 for row in run.rows for _, p in row.placements())
    assert "# Avg bus bandwidth" in text
