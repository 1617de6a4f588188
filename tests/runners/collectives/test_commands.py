"""Command building for multi-host, torchrun, NCCL and MLX launches (no hardware needed)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from bench_runner.cli import main as cli_main
from bench_runner.collectives.launcher import (
    HostSpec,
    build_rank_commands,
    build_torchrun_commands,
    parse_hosts,
    read_hostfile,
    split_output,
)
from bench_runner.collectives.mlx_backend import MlxHost, build_mlx_hostfile, build_mlx_launch_command
from bench_runner.collectives.worker import JSON_MARKER


def test_parse_hosts_and_hostfile(tmp_path: Path) -> None:
    assert parse_hosts("a,b:2,ns0@10.1.0.1:4") == [
        HostSpec("a"),
        HostSpec("b", None, 2),
        HostSpec("ns0", "10.1.0.1", 4),
    ]
    f = tmp_path / "hosts"
    f.write_text("# cluster\nnode1 slots=8\nnode2:4\n\n")
    assert read_hostfile(f) == [HostSpec("node1", None, 8), HostSpec("node2", None, 4)]
    with pytest.raises(ValueError):
        parse_hosts("bad host!")


def test_ssh_commands_per_rank() -> None:
    cmds = build_rank_commands(
        parse_hosts("h1:2,h2:2"),
        ["all_reduce", "--backend", "nccl"],
        master_port=29500,
        transport="ssh",
        iface="ib0",
    )
    assert [c.rank for c in cmds] == [0, 1, 2, 3]
    assert cmds[2].argv[:4] == ["ssh", "-o", "BatchMode=yes", "h2"]
    remote = shlex.split(cmds[3].argv[-1])
    env = dict(x.split("=", 1) for x in remote[1:9])
    assert env["RANK"] == "3" and env["LOCAL_RANK"] == "1" and env["WORLD_SIZE"] == "4"
    assert env["MASTER_ADDR"] == "h1" and env["NCCL_SOCKET_IFNAME"] == "ib0"
    assert remote[-5:] == ["-m", "bench_runner.collectives.worker", "all_reduce", "--backend", "nccl"]


def test_local_commands_carry_env() -> None:
    cmds = build_rank_commands([HostSpec("localhost", "127.0.0.1", 3)], ["broadcast"], master_port=1234)
    assert [c.env["RANK"] for c in cmds] == ["0", "1", "2"]
    assert all(c.env["MASTER_ADDR"] == "127.0.0.1" and c.env["MASTER_PORT"] == "1234" for c in cmds)


def test_torchrun_commands() -> None:
    cmds = build_torchrun_commands(parse_hosts("a:8,b:8"), ["all_reduce"], master_port=29400)
    inner = shlex.split(cmds[1][-1])
    assert inner[:6] == [
        "torchrun",
        "--nnodes=2",
        "--nproc-per-node=8",
        "--node-rank=1",
        "--master-addr=a",
        "--master-port=29400",
    ]
    assert inner[6:] == ["-m", "bench_runner.collectives.worker", "all_reduce"]
    with pytest.raises(ValueError, match="same number"):
        build_torchrun_commands(parse_hosts("a:8,b:4"), [], master_port=1)


def test_cli_dry_runs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert (
        cli_main(
            [
                "collectives",
                "all_reduce",
                "-e",
                "16M",
                "--backend",
                "nccl",
                "--hosts",
                "g1:8,g2:8",
                "--launcher",
                "torchrun",
                "--dry-run",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "--backend nccl" in lines[0] and "-e 16M" in lines[0]
    hostfile = tmp_path / "mlx.json"
    assert (
        cli_main(
            [
                "collectives",
                "all_reduce",
                "--backend",
                "mlx-jaccl",
                "--mlx-hostfile",
                str(hostfile),
                "--dry-run",
            ]
        )
        == 0
    )
    cmd = shlex.split(capsys.readouterr().out.strip())
    assert cmd[:5] == ["mlx.launch", "--backend", "jaccl", "--hostfile", str(hostfile)]
    assert "--mlx-backend" in cmd and cmd[cmd.index("--mlx-backend") + 1] == "jaccl"


def test_mlx_hostfile_and_launch() -> None:
    hosts = [MlxHost("m1", ["10.0.0.1"], [None, "rdma_en3"]), MlxHost("m2", ["10.0.0.2"], ["rdma_en3", None])]
    hf = build_mlx_hostfile(hosts, "jaccl", ["MLX_METAL_FAST_SYNCH=1"])
    assert hf == {
        "backend": "jaccl",
        "envs": ["MLX_METAL_FAST_SYNCH=1"],
        "hosts": [
            {"ssh": "m1", "ips": ["10.0.0.1"], "rdma": [None, "rdma_en3"]},
            {"ssh": "m2", "ips": ["10.0.0.2"], "rdma": ["rdma_en3", None]},
        ],
    }
    json.dumps(hf)
    with pytest.raises(ValueError, match="rdma"):
        build_mlx_hostfile([MlxHost("m1"), MlxHost("m2")], "jaccl")
    ring = build_mlx_hostfile([MlxHost("m1", ["192.168.1.2"]), MlxHost("m2", ["192.168.1.3"])], "ring")
    assert ring["backend"] == "ring"
    cmd = build_mlx_launch_command(
        "h.json", "ring", ["all_reduce", "-e", "1M"], envs=["A=1"], python="python3"
    )
    assert cmd[:7] == ["mlx.launch", "--backend", "ring", "--hostfile", "h.json", "--env", "A=1"]
    assert cmd[7:10] == ["--python", "python3", "--"]
    assert cmd[10].endswith("bench_runner/collectives/mlx_backend.py")
    with pytest.raises(ValueError, match="alltoall"):
        build_mlx_launch_command("h.json", "ring", ["alltoall"])
    with pytest.raises(ValueError):
        build_mlx_launch_command("h.json", "mpi", ["all_reduce"])


def test_split_output() -> None:
    payload = {"runs": [{"collective": "all_reduce", "nranks": 2, "dtype": "float", "rows": []}]}
    text, runs = split_output("# header\nrow\n" + JSON_MARKER + " " + json.dumps(payload) + "\n")
    assert text == "# header\nrow\n"
    assert runs[0].collective == "all_reduce" and runs[0].nranks == 2
