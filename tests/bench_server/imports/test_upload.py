"""Uploading other tools' output files through the API stores them as ordinary results."""

from __future__ import annotations

import json
import re
from pathlib import Path

from sqlalchemy import select

from bench_server.models import Failure
from tests.bench_server.conftest import Api

SHA = "b" * 40


def upload(api: Api, path: Path, **params: str) -> object:
    query = {"project": "exo", "sha": SHA, "hardware_class": "h100-sxm", "filename": path.name, **params}
    return api.client.post(
        "/api/v1/imports",
        params=query,
        content=path.read_text(),
        headers={**api.runner, "Content-Type": "text/plain"},
    )


def test_nccl_tests_log_becomes_results(api: Api, shared_data: Path) -> None:
    log = shared_data / "nccl_tests" / "h100_1node_8gpu_5collectives_v2.17.8.txt"
    r = upload(api, log)
    assert r.status_code == 201, r.text  # type: ignore[attr-defined]
    body = r.json()  # type: ignore[attr-defined]
    assert body["format"] == "nccl-tests" and body["results"] > 0 and body["failures"] == 0
    rows = api.client.get("/api/v1/results", params={"format": "json", "project": "exo"}).json()
    assert len(rows) == body["results"]
    assert {row["suite"] for row in rows} == {"collectives"}
    first = next(
        r
        for r in rows
        if r["benchmark"] == "all_reduce"
        and r["params"].get("size_bytes") == 33554432
        and r["metric"] == "busbw"
    )
    assert first["value"] == 321.1  # the busbw column of that row in the log
    assert all(row["hardware_class"] == "h100-sxm" for row in rows)
    # The same upload again is a duplicate, not a second copy.
    again = upload(api, log)
    assert again.status_code == 200 and again.json()["duplicate"] is True  # type: ignore[attr-defined]
    assert len(api.client.get("/api/v1/results", params={"format": "json"}).json()) == body["results"]


def test_failed_nccl_run_becomes_a_failure(api: Api, shared_data: Path) -> None:
    log = shared_data / "nccl_tests" / "FAILED_h100_2node_alltoall_network_error_v2.17.6.txt"
    r = upload(api, log, format="nccl-tests")
    assert r.status_code == 201, r.text  # type: ignore[attr-defined]
    assert r.json()["failures"] >= 1  # type: ignore[attr-defined]
    failures = api.client.get("/api/v1/failures", params={"project": "exo"}).json()["items"]
    assert failures and all(f["failure_class"] in {"crash", "timeout"} for f in failures)


def test_vllm_result_file(api: Api, shared_data: Path) -> None:
    path = shared_data / "vllm_bench" / "vllm_serving_llama33-70b_tp8_sharegpt_qps4.json"
    r = upload(api, path)
    assert r.status_code == 201, r.text  # type: ignore[attr-defined]
    rows = api.client.get("/api/v1/results", params={"format": "json", "metric": "mean_ttft_ms"}).json()
    assert len(rows) == 1 and rows[0]["unit"] == "ms" and rows[0]["direction"] == "lower"
    assert rows[0]["value"] == json.loads(path.read_text())["mean_ttft_ms"]
    failed = api.client.get("/api/v1/results", params={"format": "json", "metric": "failed_requests"}).json()
    assert [row["value"] for row in failed] == [0.0]  # no request of this run failed


def test_garbage_is_a_422_naming_content(api: Api, tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("nothing a benchmark tool would print\n")
    r = upload(api, junk)
    assert r.status_code == 422  # type: ignore[attr-defined]
    assert r.json()["detail"][0]["field"] == "content"  # type: ignore[attr-defined]
    assert api.client.get("/api/v1/results", params={"format": "json"}).json() == []


def test_a_log_cut_mid_table_stores_one_failure_with_its_rows(
    api: Api, shared_data: Path, tmp_path: Path
) -> None:
    text = (shared_data / "nccl_tests" / "gh200_2node_2gpu_allreduce_1M-128M_v2.18.2.txt").read_text()
    rows = [line for line in text.splitlines() if re.match(r"\s+\d+\s+\d+\s", line)]  # the table
    cut = tmp_path / "all_reduce_cut.log"
    cut.write_text(text[: text.index(rows[4])])  # the run died after its fourth row
    r = upload(api, cut)
    assert r.status_code == 201, r.text  # type: ignore[attr-defined]
    assert (r.json()["results"], r.json()["failures"]) == (0, 1)  # type: ignore[attr-defined]
    assert api.client.get("/api/v1/results", params={"format": "json"}).json() == []
    (failure,) = api.client.get("/api/v1/failures", params={"project": "exo"}).json()["items"]
    assert failure["failure_class"] == "timeout" and failure["benchmark"] == "all_reduce"
    with api.db.engine.connect() as conn:
        excerpt = conn.execute(select(Failure.log_excerpt)).scalar_one()
    assert excerpt is not None and excerpt.splitlines()[-4:] == [row.strip() for row in rows[:4]]


def test_an_asv_history_is_a_422_that_names_asv(api: Api, shared_data: Path) -> None:
    path = next(
        (shared_data / "asv_results" / "django-asv" / "results" / "ubuntu-latest").glob("*-conda-*.json")
    )
    r = upload(api, path)
    assert r.status_code == 422  # type: ignore[attr-defined]
    detail = r.json()["detail"][0]  # type: ignore[attr-defined]
    assert detail["field"] == "content" and "asv (airspeed velocity) results file" in detail["message"]
