"""The runner agent and its commands: `register`, `agent`, `execute`, `flush`.

`bench-runner agent` loops: heartbeat (background thread), long-poll claim, then for a job:
renew its lease in the background (every lease_seconds/3; a 409 stops the job), `start`, run
the suite named by the job, upload the log tail, post results and failures through the spool
(idempotency key `runner-<id>/job-<id>/attempt-<n>`), `finish`. On SIGTERM/SIGINT it lets the
current job finish within the grace period, else cancels and releases it, then exits 0.

`bench-runner execute` runs one suite for one commit without the queue (a GitHub Actions step
on a self-hosted runner) and posts the results the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import __version__
from .client import ApiError, BenchClient, ClientError, Conflict, Job, ServerUnavailable
from .config import ConfigError, RunnerConfig, default_state_dir, load_config, save_config
from .records import FailureRecord, ResultRecord
from .spool import DeliveryReport, Spool
from .suite import SuiteError, SuiteOutcome, find_suite, load_suite, run_suite

LogFn = Callable[[str], None]


def stderr_log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _machine_fingerprint(cluster_file: str | None) -> dict[str, Any]:
    from .detect import detect, stable_fingerprint

    return dict(stable_fingerprint(detect(cluster_file=cluster_file)))


def build_payload(
    *,
    idempotency_key: str,
    project: str,
    commit: dict[str, Any],
    hardware_class: str,
    fingerprint: dict[str, Any],
    results: list[ResultRecord],
    failures: list[FailureRecord],
    hostname: str | None = None,
    job_id: int | None = None,
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The body of `POST /api/v1/results` (docs/api-contract.md)."""
    if not 1 <= len(idempotency_key) <= 200:
        raise ValueError("idempotency_key must be 1..200 characters")
    commit = dict(commit)
    if isinstance(commit.get("message"), str):
        commit["message"] = commit["message"][:10_000]
    if isinstance(commit.get("author"), str):
        commit["author"] = commit["author"][:200]
    machine: dict[str, Any] = {"hardware_class": hardware_class, "fingerprint": fingerprint}
    if hostname:
        machine["hostname"] = hostname
    payload: dict[str, Any] = {
        "idempotency_key": idempotency_key,
        "project": project,
        "commit": {k: v for k, v in commit.items() if v not in (None, "", [])} | {"sha": commit["sha"]},
        "machine": machine,
        "results": [r.to_json() for r in results],
        "failures": [f.to_json() for f in failures],
    }
    if job_id is not None:
        payload["job_id"] = job_id
    if context:
        payload["context"] = context
    return payload


def job_idempotency_key(runner_id: int | str | None, job: Job) -> str:
    return f"runner-{runner_id}/job-{job.id}/attempt-{job.attempt}"


class LeaseKeeper(threading.Thread):
    """Renews a job's lease every lease_seconds/3; on 409 sets `lost` and `cancel`."""

    def __init__(
        self,
        client: BenchClient,
        job: Job,
        cancel: threading.Event,
        log: LogFn,
        interval: float | None = None,
    ) -> None:
        super().__init__(name=f"lease-{job.id}", daemon=True)
        self.client = client
        self.job = job
        self.cancel = cancel
        self.log = log
        self.interval = interval if interval is not None else max(1.0, job.lease_seconds / 3)
        self.lost = threading.Event()
        self._stop_event = threading.Event()

    def run(self) -> None:
        # The thread owns its client and closes it itself: closed from outside, a renewal still
        # in flight would fail with "client has been closed".
        try:
            while not self._stop_event.wait(self.interval):
                try:
                    self.client.renew_lease(self.job.id)
                except Conflict as exc:
                    self.log(f"job {self.job.id}: lease lost or job cancelled ({exc.error}); stopping it")
                    self.lost.set()
                    self.cancel.set()
                    return
                except ApiError as exc:  # keep trying: the lease may still be valid
                    self.log(f"job {self.job.id}: lease renewal failed: {exc}")
        finally:
            self.client.close()

    def stop(self) -> None:
        """Stop renewing; a renewal in flight finishes on its own and the thread closes its client."""
        self._stop_event.set()


class Agent:
    def __init__(
        self,
        server_url: str,
        token: str,
        *,
        runner_id: int | str | None,
        hardware_class: str,
        fingerprint: dict[str, Any],
        suites_dir: str | Path,
        work_dir: str | Path,
        spool_dir: str | Path,
        hostname: str | None = None,
        wait: float = 30.0,
        heartbeat_interval: float = 15.0,
        grace: float = 600.0,
        lease_interval: float | None = None,
        log: LogFn = stderr_log,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        self.server_url = server_url
        self.token = token
        self.runner_id = runner_id
        self.hardware_class = hardware_class
        self.fingerprint = fingerprint
        self.suites_dir = Path(suites_dir)
        self.work_dir = Path(work_dir)
        self.hostname = hostname or socket.gethostname()
        self.wait = wait
        self.heartbeat_interval = heartbeat_interval
        self.grace = grace
        self.lease_interval = lease_interval
        self.log = log
        self._client_options = client_options or {}
        self.client = self._new_client()
        self.spool = Spool(spool_dir, log=log)
        self.stopping = threading.Event()
        self.current_job: Job | None = None
        self._cancel = threading.Event()
        self._grace_timer: threading.Timer | None = None
        self._lock = threading.RLock()  # the SIGTERM handler runs on the main thread

    def _new_client(self) -> BenchClient:
        return BenchClient(self.server_url, self.token, **self._client_options)

    # -- shutdown ------------------------------------------------------------------------

    def request_stop(self, *_: Any) -> None:
        """SIGTERM: finish the current job within the grace period, else cancel and release it."""
        with self._lock:
            if self.stopping.is_set():
                return
            self.stopping.set()
            if self.current_job is not None:
                self.log(f"stop requested: finishing job {self.current_job.id} within {self.grace:.0f} s")
                self._grace_timer = threading.Timer(self.grace, self._grace_expired)
                self._grace_timer.daemon = True
                self._grace_timer.start()
            else:
                self.log("stop requested")

    def _grace_expired(self) -> None:
        self.log("grace period over: cancelling the current job")
        self._cancel.set()

    # -- loop ----------------------------------------------------------------------------

    def _heartbeat_loop(self, done: threading.Event) -> None:
        client = self._new_client()
        failing = False
        try:
            while True:
                try:
                    client.heartbeat()
                    if failing:
                        self.log("heartbeat: server reachable again")
                    failing = False
                except ApiError as exc:
                    if not failing:
                        self.log(f"heartbeat failed: {exc}")
                    failing = True
                if done.wait(self.heartbeat_interval):
                    return
        finally:
            client.close()

    def _deliver_spool(self) -> None:
        if not self.spool.pending():
            return
        report = self.spool.deliver(self.client)
        self._report_delivery(report)

    def _report_delivery(self, report: DeliveryReport) -> None:
        for key in report.delivered:
            self.log(f"results {key}: stored")
        for key in report.duplicates:
            self.log(f"results {key}: already stored (duplicate)")
        if report.remaining:
            self.log(f"{report.remaining} results batch(es) spooled for later: {report.error}")

    def run(self, max_jobs: int | None = None) -> int:
        """Serve jobs until stopped (or `max_jobs` jobs were handled); returns the exit code."""
        self.log(f"bench-runner {__version__} agent: {self.hardware_class} -> {self.client.base_url}")
        done = threading.Event()
        hb = threading.Thread(target=self._heartbeat_loop, args=(done,), name="heartbeat", daemon=True)
        hb.start()
        handled = 0
        backoff = 1.0
        try:
            while not self.stopping.is_set():
                self._deliver_spool()  # older results first, whenever the server is back
                if max_jobs is not None and handled >= max_jobs:
                    break
                try:
                    job = self.client.claim(self.wait)
                    backoff = 1.0
                except ServerUnavailable as exc:
                    self.log(f"server unavailable: {exc}; retrying in {backoff:.0f} s")
                    self.stopping.wait(backoff)
                    backoff = min(60.0, backoff * 2)
                    continue
                except ClientError as exc:
                    self.log(f"claim refused: {exc}")
                    self.stopping.wait(min(60.0, backoff))
                    backoff = min(60.0, backoff * 2)
                    continue
                if job is None:
                    continue
                if self.stopping.is_set():
                    self._release(job, "runner stopping")
                    break
                self.run_job(job)
                handled += 1
        finally:
            done.set()
            hb.join(timeout=5)
            with contextlib.suppress(ApiError):
                self._deliver_spool()
            self.client.close()
        self.log("agent stopped")
        return 0

    def _release(self, job: Job, why: str) -> None:
        try:
            self.client.release(job.id)
            self.log(f"job {job.id}: released ({why})")
        except ApiError as exc:
            self.log(
                f"job {job.id}: release failed ({exc}); the server will requeue it when the lease expires"
            )

    def _load_suite_outcome(self, job: Job) -> SuiteOutcome:
        try:
            suite = load_suite(find_suite(self.suites_dir, job.suite))
        except SuiteError as exc:
            self.log(f"job {job.id}: {exc}")
            return SuiteOutcome(
                suite=job.suite,
                failures=[
                    FailureRecord(
                        suite=job.suite, benchmark=None, failure_class="setup", message=str(exc)[:1000]
                    )
                ],
                log=str(exc),
            )
        return run_suite(
            suite,
            self.work_dir,
            job.sha,
            repo_url=job.project.get("clone_url"),
            log=self.log,
            cancel=self._cancel,
        )

    def run_job(self, job: Job) -> str:
        """Run one claimed job; returns succeeded | failed | released | lost."""
        self._cancel = threading.Event()
        with self._lock:
            self.current_job = job
        self.log(f"job {job.id}: {job.suite} at {job.sha[:12]} (attempt {job.attempt})")
        keeper = LeaseKeeper(self._new_client(), job, self._cancel, self.log, self.lease_interval)
        keeper.start()
        try:
            try:
                self.client.start(job.id)
            except Conflict as exc:
                self.log(f"job {job.id}: cannot start ({exc.error}); dropping it")
                return "lost"
            except ApiError as exc:
                self.log(f"job {job.id}: start not acknowledged ({exc}); running anyway")
            outcome = self._load_suite_outcome(job)
            if keeper.lost.is_set():
                self.log(f"job {job.id}: lease lost; its results are dropped (the server requeued it)")
                return "lost"
            if outcome.cancelled:
                self._release(job, "cancelled during shutdown")
                return "released"
            try:
                self.client.upload_log(job.id, outcome.log)
            except ApiError as exc:
                self.log(f"job {job.id}: log upload failed: {exc}")
            payload = build_payload(
                idempotency_key=job_idempotency_key(self.runner_id, job),
                project=str(job.project.get("slug", "")),
                commit={**outcome.commit, "sha": job.sha, "branch": job.commit.get("branch")},
                hardware_class=self.hardware_class,
                fingerprint=self.fingerprint,
                hostname=self.hostname,
                results=outcome.results,
                failures=outcome.failures,
                job_id=job.id,
                # what the kinds reported, by kind and benchmark, beside the runner's own keys
                context={
                    **outcome.context,
                    "suite": job.suite,
                    "runner_version": __version__,
                    "attempt": job.attempt,
                },
            )
            self._report_delivery(self.spool.submit(self.client, payload))
            state, failure_class, message = outcome.job_state()
            try:
                self.client.finish(job.id, state, failure_class, message)
                self.log(
                    f"job {job.id}: {state}" + (f" ({failure_class}: {message})" if failure_class else "")
                )
            except ApiError as exc:
                self.log(f"job {job.id}: finish failed ({exc}); results are spooled and will be delivered")
            return state
        finally:
            keeper.stop()
            with self._lock:
                self.current_job = None
                if self._grace_timer is not None:
                    self._grace_timer.cancel()


# --------------------------------------------------------------------------------------
# Commands


def _cmd_register(args: argparse.Namespace) -> int:
    from .detect import detect, hardware_class, stable_fingerprint

    fp = detect(cluster_file=args.cluster)
    cls = args.hardware_class or hardware_class(fp)
    stderr_log(f"registering runner {args.name!r} ({cls}) with {args.server}")
    try:
        with BenchClient(args.server, args.registration_token) as client:
            answer = client.register(args.name, cls, labels=args.label, fingerprint=stable_fingerprint(fp))
    except ApiError as exc:
        stderr_log(f"registration failed: {exc}")
        return 1
    try:
        config = RunnerConfig(
            server_url=args.server,
            token=str(answer["token"]),
            name=args.name,
            hardware_class=cls,
            runner_id=int(answer["runner_id"]) if answer.get("runner_id") is not None else None,
            labels=list(args.label),
            suites_dir=args.suites_dir,
            work_dir=args.work_dir,
            cluster_file=str(Path(args.cluster).resolve()) if args.cluster else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        stderr_log(f"unexpected answer from the server: {answer!r} ({exc})")
        return 1
    path = save_config(config, args.config)
    stderr_log(f"registered as runner {config.runner_id}; config written to {path} (mode 0600)")
    return 0


def _cmd_agent(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        stderr_log(str(exc))
        return 2
    suites_dir = args.suites_dir or config.suites_dir
    if not suites_dir:
        stderr_log("no suites directory: pass --suites-dir or set suites_dir in the config")
        return 2
    agent = Agent(
        config.server_url,
        config.token,
        runner_id=config.runner_id,
        hardware_class=config.hardware_class,
        fingerprint=_machine_fingerprint(config.cluster_file),
        suites_dir=suites_dir,
        work_dir=args.work_dir or config.resolved_work_dir(),
        spool_dir=config.resolved_spool_dir(),
        wait=args.wait,
        heartbeat_interval=args.heartbeat,
        grace=args.grace,
    )
    signal.signal(signal.SIGTERM, agent.request_stop)
    signal.signal(signal.SIGINT, agent.request_stop)
    return agent.run(max_jobs=1 if args.once else None)


def _execute_key(project: str, sha: str, suite: str, hardware_class: str) -> str:
    run = os.environ.get("GITHUB_RUN_ID")
    run_part = f"gh-{run}-{os.environ.get('GITHUB_RUN_ATTEMPT', '1')}" if run else uuid.uuid4().hex
    key = f"execute/{project}/{sha}/{suite}/{hardware_class}/{run_part}"
    if len(key) > 200:
        key = f"execute/{hashlib.sha256(key.encode()).hexdigest()}"
    return key


def _cmd_execute(args: argparse.Namespace) -> int:
    config: RunnerConfig | None = None
    with contextlib.suppress(ConfigError):
        config = load_config(args.config)
    server = args.server or os.environ.get("BENCH_SERVER_URL") or (config.server_url if config else None)
    token = args.token or os.environ.get("BENCH_RUNNER_TOKEN") or (config.token if config else None)
    if not args.dry_run and not (server and token):
        stderr_log(
            "execute: --server and --token (or BENCH_SERVER_URL/BENCH_RUNNER_TOKEN, or a runner config) "
            "are needed to post results; use --dry-run to only print them"
        )
        return 2
    try:
        suite = load_suite(args.suite)
    except SuiteError as exc:
        stderr_log(str(exc))
        return 2
    cluster = args.cluster or (config.cluster_file if config else None)
    fingerprint = _machine_fingerprint(cluster)
    from .detect import hardware_class as detected_class

    cls = args.hardware_class or (config.hardware_class if config else None) or detected_class(fingerprint)
    work_dir = (
        Path(args.work_dir)
        if args.work_dir
        else (config.resolved_work_dir() if config else default_state_dir() / "work")
    )
    source_dir = None if args.repo else Path(args.checkout or ".")
    started = time.monotonic()
    outcome = run_suite(suite, work_dir, args.sha, repo_url=args.repo, source_dir=source_dir, log=stderr_log)
    stderr_log(
        f"suite {suite.name}: {len(outcome.results)} results, {len(outcome.failures)} failures "
        f"in {time.monotonic() - started:.0f} s"
    )
    payload = build_payload(
        idempotency_key=args.idempotency_key or _execute_key(args.project, args.sha, suite.name, cls),
        project=args.project,
        commit={**outcome.commit, "sha": args.sha, "branch": args.branch},
        hardware_class=cls,
        fingerprint=fingerprint,
        hostname=socket.gethostname(),
        results=outcome.results,
        failures=outcome.failures,
        context={
            **outcome.context,
            "suite": suite.name,
            "runner_version": __version__,
            "mode": "execute",
            **({"github_run_id": os.environ["GITHUB_RUN_ID"]} if os.environ.get("GITHUB_RUN_ID") else {}),
        },
    )
    if args.dry_run:
        print(json.dumps(payload, indent=2, sort_keys=True))
        return 0
    assert server and token
    spool_dir = (
        Path(args.spool_dir)
        if args.spool_dir
        else (config.resolved_spool_dir() if config else default_state_dir() / "spool")
    )
    with BenchClient(server, token, retries=args.retries) as client:
        report = Spool(spool_dir, log=stderr_log).submit(client, payload)
    key = payload["idempotency_key"]
    if key in report.rejected:
        stderr_log(f"results {key}: rejected by the server (see {spool_dir}/rejected)")
        return 1
    if key not in report.delivered and key not in report.duplicates:
        stderr_log(f"results {key}: server unreachable, spooled in {spool_dir}: {report.error}")
        return 3
    stderr_log(f"results {key}: {'already stored' if key in report.duplicates else 'stored'}")
    return 1 if args.strict and outcome.failures else 0


def _cmd_flush(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        stderr_log(str(exc))
        return 2
    spool = Spool(args.spool_dir or config.resolved_spool_dir(), log=stderr_log)
    with BenchClient(config.server_url, config.token) as client:
        report = spool.deliver(client)
    stderr_log(
        f"delivered {len(report.delivered)}, duplicates {len(report.duplicates)}, "
        f"rejected {len(report.rejected)}, still spooled {report.remaining}"
    )
    return 0 if report.complete else 3


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "register", help="exchange a registration token for a runner token and save the config"
    )
    p.add_argument("--server", required=True, help="server URL, e.g. https://bench.example.org")
    p.add_argument("--registration-token", required=True)
    p.add_argument("--name", required=True, help="this runner's name")
    p.add_argument("--hardware-class", help="override the detected hardware class")
    p.add_argument("--label", action="append", default=[], help="a label (repeatable)")
    p.add_argument("--suites-dir", help="directory of suite files the agent runs by name")
    p.add_argument("--work-dir", help="checkout cache and scratch directory")
    p.add_argument("--cluster", metavar="FILE", help="this runner stands for the cluster in FILE")
    p.add_argument("--config", help="config file to write (default: $BENCH_RUNNER_CONFIG or ~/.config/...)")
    p.set_defaults(func=_cmd_register)

    p = subparsers.add_parser("agent", help="claim and run jobs until stopped (SIGTERM: finish or release)")
    p.add_argument("--config", help="runner config file")
    p.add_argument("--suites-dir", help="directory of suite files (overrides the config)")
    p.add_argument("--work-dir", help="checkout cache and scratch directory (overrides the config)")
    p.add_argument("--wait", type=float, default=30.0, help="long-poll seconds per claim (default 30)")
    p.add_argument("--heartbeat", type=float, default=15.0, help="heartbeat interval in seconds (default 15)")
    p.add_argument(
        "--grace",
        type=float,
        default=600.0,
        help="on SIGTERM, seconds to let the current job finish before releasing it (default 600)",
    )
    p.add_argument("--once", action="store_true", help="exit after one job")
    p.set_defaults(func=_cmd_agent)

    p = subparsers.add_parser("execute", help="run one suite for one commit and post the results (CI mode)")
    p.add_argument("--suite", required=True, help="suite TOML file")
    p.add_argument("--sha", required=True, help="commit to benchmark")
    p.add_argument("--project", required=True, help="project slug on the server")
    p.add_argument("--branch", help="branch of the commit")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkout", help="existing checkout of the target (default: the current directory)")
    src.add_argument("--repo", help="clone URL: clone/fetch into the work dir instead of using a checkout")
    p.add_argument("--server", help="server URL (or $BENCH_SERVER_URL, or the runner config)")
    p.add_argument("--token", help="runner or ci token (or $BENCH_RUNNER_TOKEN, or the runner config)")
    p.add_argument("--hardware-class", help="override the hardware class")
    p.add_argument("--cluster", metavar="FILE", help="the results are from the cluster in FILE")
    p.add_argument(
        "--idempotency-key", help="default: derived from project/sha/suite/class and the GitHub run"
    )
    p.add_argument("--work-dir")
    p.add_argument("--spool-dir")
    p.add_argument("--config", help="runner config file to take defaults from")
    p.add_argument("--dry-run", action="store_true", help="print the results payload instead of posting it")
    p.add_argument("--strict", action="store_true", help="exit 1 if any benchmark failed")
    p.add_argument("--retries", type=int, default=4, help="retries on connection errors and 5xx (default 4)")
    p.set_defaults(func=_cmd_execute)

    p = subparsers.add_parser("flush", help="deliver spooled results batches now")
    p.add_argument("--config", help="runner config file")
    p.add_argument("--spool-dir")
    p.set_defaults(func=_cmd_flush)
