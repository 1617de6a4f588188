"""Batch ingest: validate against what is stored, then write everything or nothing; and the
results and failures listings.

The caller's transaction is the unit of work: nothing here commits. An idempotency key
seen before from the same poster answers as a duplicate (same body) or a conflict (another body);
another poster's key of the same text is another key. Results for a job are taken only from the
registered runner that holds the job's lease. A stored batch
sends `analysis.update` once the transaction commits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bench_server.catalog.repository import (
    BenchmarkKey,
    MetricSpec,
    benchmarks_for,
    hardware_class_by_name,
    machine_for,
    metrics_for,
    project_by_slug,
    upsert_commit,
)
from bench_server.history import service as history
from bench_server.kit.errors import Conflict, Forbidden, InvalidInput
from bench_server.kit.outbox import AppContext, enqueue_after_commit
from bench_server.kit.paging import Listing
from bench_server.kit.sql import canonical_json, stable_hash
from bench_server.models import IngestBatch, Job
from bench_server.models.base import utcnow
from bench_server.models.jobs import HELD_JOB_STATES
from bench_server.results import repository as repo
from bench_server.results.schemas import IngestIn, Poster, RowFilters


@dataclass(frozen=True)
class IngestOutcome:
    batch_id: int
    duplicate: bool
    results: int
    failures: int
    project_id: int
    commit_id: int


def _existing_batch(session: Session, poster: Poster, key: str, body_hash: str) -> IngestOutcome | None:
    batch = repo.batch_by_key(session, poster.key_scope, key)
    if batch is None:
        return None
    if batch.body_hash != body_hash:
        raise Conflict(
            f"idempotency key {key!r} was already used for a different body (batch {batch.id})",
            code="idempotency_conflict",
        )
    return IngestOutcome(batch.id, True, batch.n_results, batch.n_failures, batch.project_id, batch.commit_id)


def _params_hasher() -> Callable[[dict[str, Any]], str]:
    """stable_hash of params, computed once per distinct params in a batch (a benchmark's
    metrics share their params, so a 1,000-value batch has far fewer than 1,000)."""
    memo: dict[Any, str] = {}

    def params_hash(params: dict[str, Any]) -> str:
        try:
            key: Any = tuple(params.items())
            hash(key)
        except TypeError:  # nested lists or objects: fall back to the canonical text
            key = canonical_json(params)
        if key not in memo:
            memo[key] = stable_hash(params)
        return memo[key]

    return params_hash


FINISHED_BY_RUNNER = ("succeeded", "failed")


def _check_lease(job: Job, poster: Poster) -> None:
    """Only the runner holding the job's lease reports for it (a forged report would let the
    reaper close the job as succeeded). A retry of a stored batch never gets here."""
    if poster.runner_id is None:
        raise Forbidden(
            f"job_id: results for job {job.id} are taken only from the runner that holds its lease; "
            "a token of no registered runner posts without job_id"
        )
    # The runner that finished the job may still deliver: its spool posts after `finish` when
    # the API was down at the time (nothing a runner measured may be lost).
    if job.runner_id != poster.runner_id or job.state not in (*HELD_JOB_STATES, *FINISHED_BY_RUNNER):
        raise Conflict(
            f"job_id: job {job.id} is not held by this runner (state {job.state}); its lease was lost",
            code="lease_lost",
        )


def ingest(
    session: Session, ctx: AppContext, payload: IngestIn, poster: Poster, *, source: str = "api"
) -> IngestOutcome:
    # Canonical: fields in schema order, free-form objects key-sorted by the schema.
    body_hash = hashlib.sha256(payload.model_dump_json().encode()).hexdigest()
    seen = _existing_batch(session, poster, payload.idempotency_key, body_hash)
    if seen is not None:
        return seen

    project = project_by_slug(session, payload.project)
    hardware = hardware_class_by_name(session, payload.machine.hardware_class, field="machine.hardware_class")
    branch = payload.commit.branch or project.default_branch
    job = None
    if payload.job_id is not None:
        job = repo.get_job(session, payload.job_id)
        if job is None or job.project_id != project.id:
            raise InvalidInput("job_id", f"no job {payload.job_id} in project {project.slug!r}")
        _check_lease(job, poster)

    params_hash = _params_hasher()
    specs: dict[str, MetricSpec] = {}
    field_of: dict[str, str] = {}
    wanted: dict[BenchmarkKey, dict[str, Any]] = {}
    keys: list[BenchmarkKey] = []
    for i, r in enumerate(payload.results):
        specs.setdefault(r.metric, MetricSpec(r.metric, r.unit, r.direction))
        field_of.setdefault(r.metric, f"results.{i}")
        key = (r.suite, r.benchmark, params_hash(r.params))
        wanted.setdefault(key, r.params)
        keys.append(key)
    failure_keys: list[BenchmarkKey | None] = []
    for f in payload.failures:
        if f.benchmark is None:
            failure_keys.append(None)
            continue
        key = (f.suite, f.benchmark, params_hash(f.params))
        wanted.setdefault(key, f.params)
        failure_keys.append(key)

    metrics = metrics_for(session, specs, field_of)
    commit = upsert_commit(
        session,
        project,
        payload.commit.sha,
        branch=branch,
        parents=payload.commit.parents,
        author=payload.commit.author,
        message=payload.commit.message,
        committed_at=payload.commit.committed_at,
    )
    if job is not None and job.commit_id != commit.id:
        raise InvalidInput("job_id", f"job {job.id} is for another commit")
    machine = machine_for(session, hardware, payload.machine.fingerprint, payload.machine.hostname)
    bench_ids = benchmarks_for(session, wanted)

    batch = IngestBatch(
        key_scope=poster.key_scope,
        idempotency_key=payload.idempotency_key,
        body_hash=body_hash,
        project_id=project.id,
        commit_id=commit.id,
        machine_id=machine.id,
        job_id=payload.job_id,
        branch=branch,
        source=source,
        context=payload.context,
        n_results=len(payload.results),
        n_failures=len(payload.failures),
    )
    # The batch row goes first: a concurrent request with the same key loses here, before any
    # result is written, and answers as a duplicate or conflict.
    try:
        repo.add_batch(session, batch)
    except IntegrityError:
        seen = _existing_batch(session, poster, payload.idempotency_key, body_hash)
        if seen is None:
            raise
        return seen

    now = utcnow()
    common = {
        "batch_id": batch.id,
        "project_id": project.id,
        "commit_id": commit.id,
        "branch": branch,
        "machine_id": machine.id,
        "hardware_class_id": hardware.id,
        "job_id": payload.job_id,
    }
    if payload.results:
        # The series catalog first: it looks for results already at this commit.
        history.record_results(
            session,
            project_id=project.id,
            branch=branch,
            hardware_class_id=hardware.id,
            commit=commit,
            values=[
                (bench_ids[key], metrics[r.metric].id, r.value)
                for r, key in zip(payload.results, keys, strict=True)
            ],
        )
        batch_cols = (batch.id, project.id, commit.id, branch, machine.id, hardware.id, payload.job_id, now)
        repo.insert_results(
            session,
            [
                (*batch_cols, bench_ids[key], metrics[r.metric].id, r.value, r.samples, r.stats)
                for r, key in zip(payload.results, keys, strict=True)
            ],
        )
    repo.insert_failures(
        session,
        [
            {
                **common,
                "benchmark_id": bench_ids[key] if key else None,
                "suite": f.suite,
                "failure_class": f.failure_class,
                "message": f.message,
                "log_excerpt": f.log_excerpt,
                "created_at": now,
            }
            for f, key in zip(payload.failures, failure_keys, strict=True)
        ],
    )
    # Regression analysis of what this batch touched, once it is stored.
    enqueue_after_commit(session, ctx, "analysis.update", batch.id)
    return IngestOutcome(batch.id, False, len(payload.results), len(payload.failures), project.id, commit.id)


def results_listing(filters: RowFilters, metric: str | None, samples: bool) -> Listing:
    return repo.results_listing(filters, metric, samples)


def failures_listing(filters: RowFilters, failure_class: str | None) -> Listing:
    return repo.failures_listing(filters, failure_class)
