"""The comparison of a commit with its baseline as a Markdown table, and its verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FAILED_JOB_STATES = ("failed", "timed_out")


@dataclass
class Verdict:
    results: int = 0
    regressions: list[dict[str, Any]] = field(default_factory=list)
    improvements: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    failed_jobs: list[dict[str, Any]] = field(default_factory=list)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _change(change: Any) -> str:
    return "–" if change is None else f"{change * 100:+.1f}%"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def judge(
    commit: dict[str, Any] | None, threshold: float, jobs: list[dict[str, Any]] | None = None
) -> Verdict:
    """A regression: a result worse than its baseline by at least `threshold` (0.05 = 5 %)."""
    verdict = Verdict()
    jobs = jobs if jobs is not None else (commit or {}).get("jobs", [])
    verdict.failed_jobs = [j for j in jobs if j.get("state") in FAILED_JOB_STATES]
    if commit is None:
        return verdict
    results = commit.get("results", [])
    verdict.results = len(results)
    for r in results:
        change = r.get("change")
        if change is None or r.get("improved") is None:
            continue
        if abs(change) >= threshold:
            (verdict.improvements if r["improved"] else verdict.regressions).append(r)
    verdict.failures = list(commit.get("failures", []))
    return verdict


def markdown(
    project: str, sha: str, commit: dict[str, Any] | None, verdict: Verdict, threshold: float
) -> str:
    lines = [f"### Benchmarks for `{project}` at `{sha[:12]}`", ""]
    if commit is None:
        lines.append("No results were reported for this commit.")
    else:
        base = commit.get("baseline") or {}
        lines.append(
            f"Baseline: `{str(base.get('sha', ''))[:12]}`"
            if base
            else "Baseline: none (first results on this branch)"
        )
        lines.append(f"Regression threshold: {threshold * 100:g}%")
        lines.append("")
        lines.append("| benchmark | hardware | metric | value | baseline | change | status |")
        lines.append("|---|---|---|---:|---:|---:|---|")
        regressed = {id(r) for r in verdict.regressions}
        improved = {id(r) for r in verdict.improvements}
        for r in commit.get("results", []):
            status = "regression" if id(r) in regressed else "improvement" if id(r) in improved else ""
            if status == "regression":
                status = ":red_circle: regression"
            elif status == "improvement":
                status = ":green_circle: improvement"
            unit = f" {r['unit']}" if r.get("unit") else ""
            cells = [
                f"{_cell(r.get('suite'))}/{_cell(r.get('benchmark'))}",
                _cell(r.get("hardware_class", "")),
                _cell(r.get("metric")),
                f"{_fmt(r.get('value'))}{unit}",
                _fmt(r.get("baseline_value")),
                _change(r.get("change")),
                status,
            ]
            lines.append("| " + " | ".join(cells) + " |")
        for f in verdict.failures:
            message = _cell(str(f.get("message") or "")[:200])
            hardware = _cell(f.get("hardware_class", f.get("hardware_class_id", "")))
            cells = [_cell(f.get("suite")), hardware, "–", "–", "–", "–"]
            cells.append(f":x: failure: {_cell(f.get('failure_class'))}: {message}")
            lines.append("| " + " | ".join(cells) + " |")
    for j in verdict.failed_jobs:
        lines.append("")
        lines.append(
            f"- job {j.get('id')} ({j.get('suite')} on {j.get('hardware_class', '?')}): **{j.get('state')}**"
            f" {j.get('failure_class') or ''} {j.get('message') or ''}".rstrip()
        )
    lines.append("")
    n_failures = len(verdict.failures) + len(verdict.failed_jobs)
    lines.append(
        f"**{verdict.results} results, {len(verdict.regressions)} regressions, "
        f"{len(verdict.improvements)} improvements, {n_failures} failures**"
    )
    return "\n".join(lines) + "\n"
