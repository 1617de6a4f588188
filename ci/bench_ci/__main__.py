"""`python -m bench_ci trigger|wait|report` (defaults from the GitHub Actions environment).

  trigger  POST /api/v1/runs for a commit; output run_id
  wait     poll GET /api/v1/runs/{id} until every job finished (or --timeout)
  report   GET /api/v1/commits/{sha}: Markdown table to $GITHUB_STEP_SUMMARY, outputs, and exit 1
           on a regression beyond --threshold or a failure (each configurable)

Server and token come from --server/--token or BENCH_SERVER_URL/BENCH_CI_TOKEN.
Exit codes: 0 ok, 1 regression or failure, 2 usage or API error, 3 wait timed out.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import Any

from bench_ci import github
from bench_ci.client import BenchApi, BenchApiError
from bench_ci.report import judge, markdown

PR_REF = re.compile(r"^refs/pull/(\d+)/")


def _flag(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _api(args: argparse.Namespace) -> BenchApi:
    server = args.server or github.env("BENCH_SERVER_URL")
    if not server:
        raise BenchApiError("no server: pass --server or set BENCH_SERVER_URL")
    return BenchApi(server, args.token or github.env("BENCH_CI_TOKEN"), retries=args.retries)


def _project(args: argparse.Namespace) -> str:
    project = args.project or github.env("BENCH_PROJECT")
    if not project:
        raise BenchApiError("no project: pass --project or set BENCH_PROJECT")
    return project


def _sha(args: argparse.Namespace) -> str:
    sha = args.sha or github.default_sha()
    if not sha:
        raise BenchApiError("no commit: pass --sha or set GITHUB_SHA")
    return sha


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_trigger(args: argparse.Namespace) -> int:
    ref = args.ref or github.default_ref()
    body: dict[str, Any] = {"project": _project(args), "sha": _sha(args), "force": args.force}
    if ref:
        body["ref"] = ref
    pr = args.pull_request
    match = PR_REF.match(ref or "")
    if pr is None and match:
        pr = int(match.group(1))
    if pr is not None:
        body["pull_request"] = pr
    branch = args.branch or (github.env("GITHUB_HEAD_REF") if pr is not None else None)
    if branch:
        body["branch"] = branch
    if args.suite:
        body["suites"] = args.suite
    if args.hardware_class:
        body["hardware_classes"] = args.hardware_class
    with _api(args) as api:
        answer = api.trigger(body)
    log(f"run {answer['run_id']} queued for {body['sha'][:12]} ({body['project']})")
    github.set_outputs({"run_id": answer["run_id"], "sha": answer["sha"]})
    print(json.dumps(answer))
    return 0


def cmd_wait(args: argparse.Namespace) -> int:
    run_id = args.run_id or github.env("BENCH_RUN_ID")
    if not run_id:
        raise BenchApiError("no run: pass --run-id (the trigger step's output) or set BENCH_RUN_ID")
    deadline = time.monotonic() + args.timeout
    with _api(args) as api:
        while True:
            run = api.run(int(run_id))
            counts = run.get("counts", {})
            if run.get("done"):
                break
            if time.monotonic() >= deadline:
                log(f"run {run_id}: not done after {args.timeout:.0f} s: {counts}")
                github.set_outputs({"state": "timeout", "jobs": json.dumps(counts)})
                return 3
            progress = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no jobs yet"
            log(f"run {run_id}: waiting ({progress})")
            time.sleep(args.interval)
    state = "succeeded" if run.get("succeeded") else "failed"
    log(f"run {run_id}: done, {state}: {counts}")
    github.set_outputs({"state": state, "jobs": json.dumps(counts)})
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    project, sha = _project(args), _sha(args)
    with _api(args) as api:
        commit = api.commit(project, sha, args.baseline)
        jobs = api.run(int(args.run_id))["jobs"] if args.run_id else None
    verdict = judge(commit, args.threshold, jobs)
    text = markdown(project, sha, commit, verdict, args.threshold)
    github.write_summary(text)
    print(text)
    failures = len(verdict.failures) + len(verdict.failed_jobs)
    github.set_outputs(
        {
            "results": verdict.results,
            "regressions": len(verdict.regressions),
            "improvements": len(verdict.improvements),
            "failures": failures,
        }
    )
    failing = []
    if args.fail_on_regression and verdict.regressions:
        failing.append(f"{len(verdict.regressions)} regression(s) beyond {args.threshold * 100:g}%")
    if args.fail_on_failure and failures:
        failing.append(f"{failures} failure(s)")
    if args.require_results and verdict.results == 0:
        failing.append("no results")
    if failing:
        log("benchmarks: " + "; ".join(failing))
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench-ci", description=__doc__.splitlines()[0])
    parser.add_argument("--server", help="bench-server URL (or $BENCH_SERVER_URL)")
    parser.add_argument("--token", help="a ci-scoped token (or $BENCH_CI_TOKEN)")
    parser.add_argument("--project", help="project slug (or $BENCH_PROJECT)")
    parser.add_argument("--retries", type=int, default=3, help="retries on connection errors and 5xx")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("trigger", help="queue benchmark jobs for a commit")
    p.add_argument("--sha", help="default: $GITHUB_SHA")
    p.add_argument("--ref", help="default: $GITHUB_REF")
    p.add_argument("--branch", help="default: from the ref ($GITHUB_HEAD_REF for pull requests)")
    p.add_argument("--pull-request", type=int, help="default: from refs/pull/<n>/...")
    p.add_argument("--suite", action="append", help="repeatable; default: the project's suites")
    p.add_argument("--hardware-class", action="append", help="repeatable; default: every class with runners")
    p.add_argument("--force", action="store_true", help="queue again even if already run")
    p.set_defaults(func=cmd_trigger)

    p = sub.add_parser("wait", help="wait until every job of a run finished")
    p.add_argument("--run-id", help="default: $BENCH_RUN_ID")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds (default 3600)")
    p.add_argument("--interval", type=float, default=15.0, help="seconds between polls (default 15)")
    p.set_defaults(func=cmd_wait)

    p = sub.add_parser("report", help="summarise a commit's results against its baseline")
    p.add_argument("--sha", help="default: $GITHUB_SHA")
    p.add_argument("--baseline", help="compare against this commit (e.g. the merge-base)")
    p.add_argument("--run-id", help="also report this run's failed jobs")
    p.add_argument("--threshold", type=float, default=0.05, help="regression threshold, 0.05 = 5%% (default)")
    p.add_argument("--fail-on-regression", type=_flag, default=True, metavar="true|false")
    p.add_argument("--fail-on-failure", type=_flag, default=True, metavar="true|false")
    p.add_argument("--require-results", type=_flag, default=False, metavar="true|false")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BenchApiError as exc:
        log(f"bench-ci: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
