"""Hardware detection: `bench-runner detect` prints this machine's fingerprint and hardware class.

    raw = sources.collect()               # run the tools (impure)
    fp = build_fingerprint(raw)           # parse (pure)
    fingerprint_hash(fp), hardware_class(fp)

A cluster runner describes its members and links in a file (`--cluster FILE`, see
`load_cluster`) and gets `cluster_fingerprint(members, links)`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

from .fingerprint import (
    VOLATILE_KEYS,
    build_fingerprint,
    canonical_json,
    cluster_class,
    cluster_fingerprint,
    fingerprint_hash,
    gpu_class,
    hardware_class,
    machine_class,
    stable_fingerprint,
)
from .sources import RawSources, collect

__all__ = [
    "VOLATILE_KEYS",
    "RawSources",
    "build_fingerprint",
    "canonical_json",
    "cluster_class",
    "cluster_fingerprint",
    "collect",
    "detect",
    "fingerprint_hash",
    "gpu_class",
    "hardware_class",
    "load_cluster",
    "machine_class",
    "register",
    "stable_fingerprint",
]


def detect(raw: RawSources | None = None, cluster_file: str | Path | None = None) -> dict[str, Any]:
    """This machine's fingerprint (or the cluster's, if a cluster file is given)."""
    if cluster_file is not None:
        return load_cluster(cluster_file)
    return build_fingerprint(raw if raw is not None else collect())


def _read_structured(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a table/object at the top level")
    return data


def load_cluster(path: str | Path) -> dict[str, Any]:
    """A cluster file (TOML or JSON):

        [[member]]                       # or "members" in JSON
        name = "mac-a"
        fingerprint = "mac-a.json"       # `bench-runner detect > mac-a.json` run on that machine
        [[link]]                         # or "links"
        a = "mac-a"
        b = "spark"
        kind = "thunderbolt-rdma"
        gbps = 80

    `fingerprint` may also be an inline table. Relative paths are relative to the file.
    """
    path = Path(path)
    data = _read_structured(path)
    members_in = data.get("members", data.get("member", []))
    links_in = data.get("links", data.get("link", []))
    if not isinstance(members_in, list) or not members_in:
        raise ValueError(f"{path}: members: at least one member is required")
    members = []
    for i, m in enumerate(members_in):
        if not isinstance(m, dict) or "name" not in m or "fingerprint" not in m:
            raise ValueError(f"{path}: members[{i}]: needs a name and a fingerprint")
        fp = m["fingerprint"]
        if isinstance(fp, str):
            fp = _read_structured(path.parent / fp)
        if "fingerprint" in fp and isinstance(fp["fingerprint"], dict):  # a saved `detect` output
            fp = fp["fingerprint"]
        members.append({"name": m["name"], "fingerprint": fp})
    if not isinstance(links_in, list):
        raise ValueError(f"{path}: links: must be a list")
    return cluster_fingerprint(members, links_in)


def describe(fp: dict[str, Any]) -> dict[str, Any]:
    return {"hardware_class": hardware_class(fp), "fingerprint_hash": fingerprint_hash(fp), "fingerprint": fp}


def _run(args: argparse.Namespace) -> int:
    if args.replay:
        raw: RawSources | None = RawSources.load(args.replay)
    else:
        raw = None if args.cluster else collect()
    if args.record and raw is not None:
        raw.save(args.record)
        print(f"recorded raw outputs to {args.record}", file=sys.stderr)
    try:
        fp = detect(raw, cluster_file=args.cluster)
    except (OSError, ValueError) as exc:
        print(f"bench-runner detect: {exc}", file=sys.stderr)
        return 2
    if args.stable:
        fp = stable_fingerprint(fp)
    print(json.dumps(describe(fp), indent=2, sort_keys=True))
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("detect", help="print this machine's hardware fingerprint and class as JSON")
    p.add_argument("--cluster", metavar="FILE", help="describe a cluster from a members/links file instead")
    p.add_argument("--record", metavar="DIR", help="also save the raw tool outputs to DIR (for fixtures)")
    p.add_argument("--replay", metavar="DIR", help="parse raw outputs recorded with --record instead")
    p.add_argument("--stable", action="store_true", help="omit volatile fields (hostname, free memory, ...)")
    p.set_defaults(func=_run)
