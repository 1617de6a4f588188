"""Lookups and get-or-create for catalog rows. Safe under concurrent ingest (ON CONFLICT DO NOTHING)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from bench_server.kit.cache import immutable_rows
from bench_server.kit.errors import InvalidInput
from bench_server.kit.paging import Listing
from bench_server.kit.sql import insert_ignoring_conflicts, stable_hash
from bench_server.models import Benchmark, Commit, HardwareClass, Machine, Metric, Project
from bench_server.models.base import utcnow

_CLUSTER_PART = re.compile(r"^\s*(\d+)\s*x\s*([a-z0-9][a-z0-9._-]*)\s*$")
# A cluster has at most this many machines in all (and so a count the JSON encoder can write).
MAX_CLUSTER_MACHINES = 100_000
MAX_CLUSTER_PARTS = 32


class ClusterTooLarge(ValueError):
    pass


def project_by_slug(session: Session, slug: str, *, field: str = "project") -> Project:
    project = session.scalars(select(Project).where(Project.slug == slug)).one_or_none()
    if project is None:
        raise InvalidInput(field, f"unknown project {slug!r}; an admin creates projects first")
    return project


def parse_cluster(name: str) -> list[tuple[int, str]] | None:
    """`2x mac-studio-m3-ultra + 1x dgx-spark` -> [(2, 'mac-studio-m3-ultra'), (1, 'dgx-spark')].

    None if the name is not a cluster; ClusterTooLarge if it is one beyond the bounds."""
    if "+" not in name and not _CLUSTER_PART.match(name):
        return None
    chunks = name.split("+")
    if len(chunks) > MAX_CLUSTER_PARTS:
        raise ClusterTooLarge(f"a cluster names at most {MAX_CLUSTER_PARTS} parts")
    parts = []
    for chunk in chunks:
        m = _CLUSTER_PART.match(chunk)
        if not m or int(m.group(1)) < 1:
            return None
        parts.append((int(m.group(1)), m.group(2)))
    if sum(count for count, _ in parts) > MAX_CLUSTER_MACHINES:
        raise ClusterTooLarge(f"a cluster has at most {MAX_CLUSTER_MACHINES} machines")
    return parts


def canonical_cluster_name(parts: Iterable[tuple[int, str]]) -> str:
    merged: dict[str, int] = {}
    for count, cls in parts:
        merged[cls] = merged.get(cls, 0) + count
    return " + ".join(f"{merged[c]}x {c}" for c in sorted(merged))


def hardware_class_by_name(session: Session, name: str, *, field: str = "hardware_class") -> HardwareClass:
    """A known class, or a cluster composition of known classes (created on first use)."""
    row = session.scalars(select(HardwareClass).where(HardwareClass.name == name)).one_or_none()
    if row is not None:
        return row
    try:
        parts = parse_cluster(name)
    except ClusterTooLarge as exc:
        raise InvalidInput(field, f"{exc}; {name!r} is beyond that") from exc
    if parts is None:
        raise InvalidInput(field, f"unknown hardware class {name!r}; see GET /api/v1/hardware")
    members = {cls for _, cls in parts}
    known = {
        hc.name: hc for hc in session.scalars(select(HardwareClass).where(HardwareClass.name.in_(members)))
    }
    missing = sorted(members - set(known))
    if missing:
        raise InvalidInput(field, f"unknown hardware class {', '.join(missing)} in cluster {name!r}")
    canonical = canonical_cluster_name(parts)
    row = session.scalars(select(HardwareClass).where(HardwareClass.name == canonical)).one_or_none()
    if row is not None:
        return row
    counts: dict[str, int] = {}
    for count, cls in parts:
        counts[cls] = counts.get(cls, 0) + count
    insert_ignoring_conflicts(
        session,
        HardwareClass.__table__,  # type: ignore[arg-type]
        [
            {
                "name": canonical,
                "kind": "cluster",
                "created_at": utcnow(),
                "accelerators": sum(known[c].accelerators * n for c, n in counts.items()),
                "members": [{"class": c, "count": n} for c, n in sorted(counts.items())],
                "description": f"cluster of {canonical}",
            }
        ],
        ["name"],
    )
    return session.scalars(select(HardwareClass).where(HardwareClass.name == canonical)).one()


def machine_for(
    session: Session, hardware_class: HardwareClass, fingerprint: dict[str, Any], hostname: str | None
) -> Machine:
    """The machine row for this fingerprint; its hash keys comparability, so the class is part of it."""
    fp_hash = stable_hash({"hardware_class": hardware_class.name, "fingerprint": fingerprint})
    now = utcnow()
    insert_ignoring_conflicts(
        session,
        Machine.__table__,  # type: ignore[arg-type]
        [
            {
                "hardware_class_id": hardware_class.id,
                "fingerprint": fingerprint,
                "fingerprint_hash": fp_hash,
                "hostname": hostname,
                "created_at": now,
                "last_seen_at": now,
            }
        ],
        ["fingerprint_hash"],
    )
    machine = session.scalars(select(Machine).where(Machine.fingerprint_hash == fp_hash)).one()
    machine.last_seen_at = now
    return machine


def upsert_commit(
    session: Session,
    project: Project,
    sha: str,
    *,
    branch: str | None = None,
    parents: list[str] | None = None,
    author: str | None = None,
    message: str | None = None,
    committed_at: datetime | None = None,
) -> Commit:
    """Record a commit, or fill in what an earlier report did not know about it."""
    commit = session.scalars(
        select(Commit).where(Commit.project_id == project.id, Commit.sha == sha)
    ).one_or_none()
    if commit is None:
        order_key = _order_key_for(session, project.id, parents or [])
        insert_ignoring_conflicts(
            session,
            Commit.__table__,  # type: ignore[arg-type]
            [
                {
                    "project_id": project.id,
                    "sha": sha,
                    "branch": branch,
                    "parents": parents or [],
                    "author": author,
                    "message": message,
                    "committed_at": committed_at,
                    "order_key": order_key,
                    "created_at": utcnow(),
                }
            ],
            ["project_id", "sha"],
        )
        commit = session.scalars(
            select(Commit).where(Commit.project_id == project.id, Commit.sha == sha)
        ).one()
        return commit
    if branch and not commit.branch:
        commit.branch = branch
    if parents and not commit.parents:
        commit.parents = parents
    commit.author = commit.author or author
    commit.message = commit.message or message
    commit.committed_at = commit.committed_at or committed_at
    return commit


def _order_key_for(session: Session, project_id: int, parents: list[str]) -> int:
    # First-parent history: one past the first parent when we know it; otherwise after
    # everything seen so far (commits normally arrive in the order they were pushed).
    if parents:
        parent_key = session.scalar(
            select(Commit.order_key).where(Commit.project_id == project_id, Commit.sha == parents[0])
        )
        if parent_key is not None:
            return int(parent_key) + 1
    newest = session.scalar(select(func.max(Commit.order_key)).where(Commit.project_id == project_id))
    return int(newest or 0) + 1


@dataclass(frozen=True)
class MetricSpec:
    name: str
    unit: str
    direction: str


def metrics_for(
    session: Session, specs: dict[str, MetricSpec], field_of: dict[str, str]
) -> dict[str, Metric]:
    """Get or create metrics; an existing metric must keep its unit and direction."""
    if not specs:
        return {}
    cache = immutable_rows(session)
    existing: dict[str, Metric] = {n: cache[("metric", n)] for n in specs if ("metric", n) in cache}
    unknown = [n for n in specs if n not in existing]
    if unknown:
        for m in session.scalars(select(Metric).where(Metric.name.in_(unknown))):
            session.expunge(m)
            cache[("metric", m.name)] = existing[m.name] = m
    for name, m in existing.items():
        spec = specs[name]
        if spec.unit != m.unit:
            raise InvalidInput(
                f"{field_of[name]}.unit",
                f"metric {name!r} is stored in {m.unit!r}; this batch gives {spec.unit!r}",
            )
        if spec.direction != m.direction:
            raise InvalidInput(
                f"{field_of[name]}.direction",
                f"metric {name!r} is {m.direction}-is-better; this batch says {spec.direction}",
            )
    missing = [s for n, s in specs.items() if n not in existing]
    if missing:
        now = utcnow()
        insert_ignoring_conflicts(
            session,
            Metric.__table__,  # type: ignore[arg-type]
            [{"name": s.name, "unit": s.unit, "direction": s.direction, "created_at": now} for s in missing],
            ["name"],
        )
        created = session.scalars(select(Metric).where(Metric.name.in_([s.name for s in missing])))
        for m in created:
            spec = specs[m.name]
            if (m.unit, m.direction) != (spec.unit, spec.direction):  # lost a race to another unit
                raise InvalidInput(f"{field_of[m.name]}.unit", f"metric {m.name!r} is stored in {m.unit!r}")
            existing[m.name] = m
    return existing


BenchmarkKey = tuple[str, str, str]  # suite, name, params hash


def benchmarks_for(session: Session, wanted: dict[BenchmarkKey, dict[str, Any]]) -> dict[BenchmarkKey, int]:
    """Get or create benchmarks by (suite, name, params hash); returns their ids."""
    if not wanted:
        return {}
    cols = tuple_(Benchmark.suite, Benchmark.name, Benchmark.params_hash)
    cache = immutable_rows(session)

    def lookup(keys: list[BenchmarkKey]) -> dict[BenchmarkKey, int]:
        found: dict[BenchmarkKey, int] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows = session.execute(
                select(Benchmark.suite, Benchmark.name, Benchmark.params_hash, Benchmark.id).where(
                    cols.in_(chunk)
                )
            )
            found.update({(s, n, h): i for s, n, h, i in rows})
        return found

    ids = {k: cache[("benchmark-key", k)] for k in wanted if ("benchmark-key", k) in cache}
    found = lookup([k for k in wanted if k not in ids])
    cache.update({("benchmark-key", k): i for k, i in found.items()})
    ids.update(found)
    missing = [k for k in wanted if k not in ids]
    if missing:
        now = utcnow()
        insert_ignoring_conflicts(
            session,
            Benchmark.__table__,  # type: ignore[arg-type]
            [
                {"suite": s, "name": n, "params_hash": h, "params": wanted[(s, n, h)], "created_at": now}
                for s, n, h in missing
            ],
            ["suite", "name", "params_hash"],
        )
        ids.update(lookup(missing))
    return ids


# --------------------------------------------------------------------------------------
# Admin writes and listings

PROJECT_COLUMNS = ["id", "slug", "name", "clone_url", "default_branch", "github_repo", "created_at"]
HARDWARE_COLUMNS = [
    "id", "name", "kind", "description", "accelerators", "members", "power_w", "price_per_hour",
]  # fmt: skip
BENCHMARK_COLUMNS = ["id", "suite", "name", "params", "params_hash"]
METRIC_COLUMNS = ["id", "name", "unit", "direction"]
MACHINE_COLUMNS = ["id", "hardware_class", "fingerprint_hash", "hostname", "fingerprint", "last_seen_at"]


def project_exists(session: Session, slug: str) -> bool:
    return session.scalars(select(Project.id).where(Project.slug == slug)).first() is not None


def hardware_class_exists(session: Session, name: str) -> bool:
    return session.scalars(select(HardwareClass.id).where(HardwareClass.name == name)).first() is not None


def hardware_class_named(session: Session, name: str) -> HardwareClass | None:
    """A hardware class by its exact name (no cluster is created)."""
    return session.scalars(select(HardwareClass).where(HardwareClass.name == name)).one_or_none()


def add(session: Session, row: Project | HardwareClass) -> None:
    session.add(row)
    session.flush()


def all_projects(session: Session) -> list[Project]:
    return list(session.scalars(select(Project).order_by(Project.slug)))


def projects_listing() -> Listing:
    query = select(*(getattr(Project, c) for c in PROJECT_COLUMNS))
    return Listing("projects", query, Project.id, PROJECT_COLUMNS)


def hardware_listing() -> Listing:
    query = select(*(getattr(HardwareClass, c) for c in HARDWARE_COLUMNS))
    return Listing("hardware", query, HardwareClass.id, HARDWARE_COLUMNS)


def machines_listing(hardware_class: str | None) -> Listing:
    query = select(
        Machine.id,
        HardwareClass.name,
        Machine.fingerprint_hash,
        Machine.hostname,
        Machine.fingerprint,
        Machine.last_seen_at,
    ).join(HardwareClass, HardwareClass.id == Machine.hardware_class_id)
    if hardware_class:
        query = query.where(HardwareClass.name == hardware_class)
    return Listing("machines", query, Machine.id, MACHINE_COLUMNS)


def benchmarks_listing(suite: str | None, name: str | None) -> Listing:
    query = select(*(getattr(Benchmark, c) for c in BENCHMARK_COLUMNS))
    if suite:
        query = query.where(Benchmark.suite == suite)
    if name:
        query = query.where(Benchmark.name == name)
    return Listing("benchmarks", query, Benchmark.id, BENCHMARK_COLUMNS)


def metrics_listing() -> Listing:
    query = select(*(getattr(Metric, c) for c in METRIC_COLUMNS))
    return Listing("metrics", query, Metric.id, METRIC_COLUMNS)
