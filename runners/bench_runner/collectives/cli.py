"""`bench-runner collectives`: nccl-tests style sweeps over torch.distributed (gloo/NCCL) or MLX.

Examples:
  bench-runner collectives all_reduce -b 8 -e 16M -f 2 -n 20 -w 5 --np 2 --backend gloo --json out.json
  bench-runner collectives all_reduce all_gather --hosts a:8,b:8 --launcher ssh --iface eth0
  bench-runner collectives all_reduce --hosts a:8,b:8 --launcher torchrun --dry-run
  bench-runner collectives all_reduce --backend mlx-jaccl --mlx-hostfile hosts.json --dry-run

Exit status as nccl-tests: 7 when any element was wrong ("Out of bounds values : N FAILED"),
1 when a rank failed to run, 0 otherwise. `--json` writes {"runs", "results", "failures",
"context"}; context says per collective which placements were measured and why any was not.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any

from .worker import WRONG_RESULT_EXIT, add_sweep_arguments, any_wrong


def _worker_args(args: argparse.Namespace) -> list[str]:
    out = [
        *args.collectives,
        "-b",
        str(args.minbytes),
        "-e",
        str(args.maxbytes),
        "-f",
        str(args.stepfactor),
        "-i",
        str(args.stepbytes),
        "-d",
        args.datatype,
        "-w",
        str(args.warmup_iters),
        "-n",
        str(args.iters),
        "-c",
        str(args.check),
    ]
    if args.fault_rank is not None:
        out += ["--fault-rank", str(args.fault_rank)]
    if args.backend in ("gloo", "nccl"):
        out += ["--backend", args.backend]
    return out


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "collectives",
        help="nccl-tests style collective bandwidth sweeps",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_sweep_arguments(p)
    # --backend from add_sweep_arguments only knows torch backends; widen it for MLX
    for action in p._actions:
        if action.dest == "backend":
            action.choices = ["gloo", "nccl", "mlx-ring", "mlx-jaccl"]
            action.help = "gloo (CPU), nccl (CUDA), mlx-ring or mlx-jaccl (Macs, via mlx.launch)"
    p.add_argument("--np", type=int, default=2, help="local ranks (ignored with --hosts)")
    p.add_argument("--hosts", default=None, help="multi-host: name[@address][:slots],...")
    p.add_argument("--hostfile", default=None, help="MPI-style hostfile (host slots=N per line)")
    p.add_argument(
        "--launcher",
        default="ssh",
        choices=["ssh", "torchrun", "netns"],
        help="how to start ranks on --hosts",
    )
    p.add_argument("--master-port", type=int, default=29500)
    p.add_argument("--iface", default=None, help="network interface for gloo/NCCL sockets")
    p.add_argument("--remote-python", default=None, help="python on remote hosts (default python3)")
    p.add_argument("--mlx-hostfile", default=None, help="mlx.launch JSON hostfile")
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--dry-run", action="store_true", help="print the launch commands and exit")
    p.add_argument("--json", default=None, help="write the runs (and records) as JSON here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from . import launcher as L
    from .mlx_backend import build_mlx_launch_command
    from .records import run_context, run_to_records

    wargs = _worker_args(args)
    if args.backend.startswith("mlx-"):
        if not args.mlx_hostfile:
            print("error: --backend mlx-* needs --mlx-hostfile (see mlx.distributed_config)", file=sys.stderr)
            return 2
        cmd = build_mlx_launch_command(args.mlx_hostfile, args.backend.split("-", 1)[1], wargs)
        if args.dry_run:
            print(shlex.join(cmd))
            return 0
        import subprocess

        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        if proc.returncode not in L.FINISHED_EXITS:
            sys.stderr.write(proc.stderr[-4000:])
            return proc.returncode
        try:
            text, runs = L.read_runs(L.LaunchResult(proc.stdout, [proc.returncode], {}, 0.0))
        except L.LaunchError as exc:
            print(f"error: {exc} ({exc.failure_class})", file=sys.stderr)
            return WRONG_RESULT_EXIT
    else:
        hosts = None
        if args.hostfile:
            hosts = L.read_hostfile(args.hostfile)
        elif args.hosts:
            hosts = L.parse_hosts(args.hosts)
        if hosts and args.launcher == "torchrun":
            cmds = L.build_torchrun_commands(hosts, [*wargs, "--emit-json"], master_port=args.master_port)
            for c in cmds:
                print(shlex.join(c))
            if not args.dry_run:
                print(
                    "# run these on each host (or drop --launcher torchrun to let bench-runner start ssh)",
                    file=sys.stderr,
                )
            return 0
        if args.dry_run:
            port = args.master_port
            rank_cmds = L.build_rank_commands(
                hosts or [L.HostSpec("localhost", "127.0.0.1", args.np)],
                [*wargs, "--emit-json"],
                master_port=port,
                transport=args.launcher if hosts else "local",
                iface=args.iface,
                python=args.remote_python,
            )
            for rc in rank_cmds:
                env = " ".join(f"{k}={v}" for k, v in rc.env.items())
                print((env + " " if env else "") + shlex.join(rc.argv))
            return 0
        try:
            if hosts:
                text, runs = L.run_hosts(
                    hosts,
                    wargs,
                    transport=args.launcher,
                    master_port=args.master_port,
                    timeout=args.timeout,
                    iface=args.iface,
                    python=args.remote_python,
                )
            else:
                text, runs = L.run_local(wargs, nprocs=args.np, timeout=args.timeout)
        except L.LaunchError as exc:
            print(f"error: {exc} ({exc.failure_class})\n{exc.log_excerpt}", file=sys.stderr)
            if args.json:
                _write_json(
                    args.json,
                    [],
                    [
                        {
                            "suite": "collectives",
                            "benchmark": c,
                            "failure_class": exc.failure_class,
                            "message": str(exc),
                            "log_excerpt": exc.log_excerpt[-2000:],
                        }
                        for c in args.collectives
                    ],
                )
            return WRONG_RESULT_EXIT if exc.failure_class == "wrong_result" else 1
    sys.stdout.write(text)
    sys.stdout.flush()
    if args.json:
        results, failures = [], []
        for r in runs:
            res, fail = run_to_records(r)
            results += [x.to_json() for x in res]
            failures += [x.to_json() for x in fail]
        context = {r.collective: run_context(r) for r in runs}
        _write_json(args.json, [r.to_json() for r in runs], failures, results, context)
    # as nccl-tests: a failed check fails the command
    return WRONG_RESULT_EXIT if any_wrong(runs) else 0


def _write_json(
    path: str,
    runs: list[Any],
    failures: list[Any],
    results: list[Any] | None = None,
    context: dict[str, Any] | None = None,
) -> None:
    data = {"runs": runs, "results": results or [], "failures": failures, "context": context or {}}
    with open(path, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
