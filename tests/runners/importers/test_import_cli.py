"""`bench-runner import` prints what the shared parsers in bench_formats read from a file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench_formats import parse
from bench_runner.cli import main

from tests.conftest import SHARED_DATA

LOG = SHARED_DATA / "nccl_tests" / "h100_1node_8gpu_5collectives_v2.17.8.txt"

pytestmark = pytest.mark.skipif(not LOG.is_file(), reason=f"shared data not found at {LOG}")


def test_json_output_is_the_parsed_outcome(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", str(LOG), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == parse("auto", LOG.read_text(), source_name=LOG.name).to_json()
    assert printed["meta"]["format"] == "nccl-tests" and printed["results"]


def test_table_output_and_a_file_no_parser_reads(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["import", str(LOG), "--format", "nccl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# nccl-tests: ") and any(
        line.startswith("collectives\tall_reduce\tbusbw\t") for line in lines
    )
    junk = tmp_path / "notes.txt"
    junk.write_text("nothing a benchmark tool would print\n")
    assert main(["import", str(junk)]) == 2
    assert "cannot tell the format" in capsys.readouterr().err
