"""Settings of the serving, local-gen and collectives kinds: errors name the file, the
benchmark's table and the key; unknown keys are refused; the example suites parse and
validate; the `{reference_engine}` placeholder."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from bench_runner.engine import reference_engine_command
from bench_runner.suite import SuiteError, engine_argv, load_suite

from .conftest import SUITES_DIR, write_suite


def _suite(kind: str, params: str = "", beside: str = "") -> str:
    return f"""
        name = "v"
        [[benchmark]]
        name = "b"
        kind = "{kind}"
        {beside}
        [benchmark.params]
        {params}
    """


BAD = [
    # serving
    ("serving", "isl = 0", "", "params.isl", ">= 1, got 0"),
    ("serving", 'osl = "64"', "", "params.osl", "must be an integer"),
    ("serving", "concurrency = [1, 0]", "", "params.concurrency[1]", ">= 1"),
    ("serving", "concurrency = 2\nrequest_rate = 4", "", "params.concurrency", "not both"),
    ("serving", "request_rate = -1", "", "params.request_rate[0]", "> 0"),
    ("serving", "max_concurrency = 4", "", "params.max_concurrency", "request_rate"),
    ("serving", 'endpoint = "embeddings"', "", "params.endpoint", "'completions' or 'chat'"),
    ("serving", "", 'base_url = "localhost:8000"', "base_url", "http(s) URL"),
    ("serving", "", "goodput = { ttfb = 5 }", "goodput", "ttfb"),
    ("serving", "", 'tokenizer = "hf"', "tokenizer", "'server' or 'none'"),
    ("serving", "", "percentiles = [50, 101]", "percentiles[1]", "<= 100"),
    ("serving", "", "max_failed_fraction = 2", "max_failed_fraction", "<= 1"),
    ("serving", "isl = 8", "isl = 8", "isl", "both"),
    ("serving", "", 'engine = "tgi"', "engine", "llama-cpp-python"),
    ("serving", "shared_prefix_len = -1", "", "params.shared_prefix_len", ">= 0, got -1"),
    ("serving", "isl = 32\nshared_prefix_len = 32", "", "params.shared_prefix_len", "room (isl 32)"),
    ("serving", "", "best_request_throughput = 0", "best_request_throughput", "> 0"),
    ("serving", "", 'best_request_throughput = "12"', "best_request_throughput", "must be a number"),
    # local-gen
    ("local-gen", "gen_len = 1", "", "params.gen_len", "at least 2"),
    ("local-gen", "prompt_len = []", "", "params.prompt_len", "must not be empty"),
    ("local-gen", 'mode = "gpu"', "", "params.mode", "'server' or 'in-process'"),
    ("local-gen", 'mode = "in-process"', 'base_url = "http://x:1"', "base_url", 'mode = "server"'),
    ("local-gen", "threads = 2", "", "params.threads", '"in-process"'),
    ("local-gen", "repetitions = 0", "", "params.repetitions", ">= 1"),
    # collectives
    ("collectives", 'collectives = ["all_reduce", "allreduce"]', "", "params.collectives", "'allreduce'"),
    ("collectives", 'max_bytes = "16Q"', "", "params.max_bytes", "bad size"),
    ("collectives", 'min_bytes = "1M"\nmax_bytes = "1K"', "", "params.max_bytes", "min_bytes <= max_bytes"),
    ("collectives", "step_factor = 1", "", "params.step_factor", "step bytes"),
    ("collectives", 'dtype = "float7"', "", "params.dtype", "unknown data type"),
    ("collectives", 'backend = "mpi"', "", "params.backend", "'gloo', 'nccl', 'mlx-ring' or 'mlx-jaccl'"),
    ("collectives", 'backend = "mlx-ring"', "", "params.mlx_hostfile", "required"),
    (
        "collectives",
        'backend = "mlx-jaccl"\ncollectives = ["alltoall"]',
        "",
        "params.collectives",
        "alltoall",
    ),
    ("collectives", 'hosts = "a:2,b:2"\nnp = 4', "", "params.np", "hosts"),
    ("collectives", "np = 2\nfault_rank = 2", "", "params.fault_rank", "below np"),
    ("collectives", "iters = 0", "", "params.iters", ">= 1"),
    ("collectives", 'launcher = "ssh"', "", "params.launcher", "only with hosts"),
]


def _load_error(tmp_path: Path, text: str) -> str:
    """The error of loading the suite `text` as `suites/x.toml`."""
    with pytest.raises(SuiteError) as err:
        load_suite(write_suite(tmp_path, text, name="x.toml"))
    return str(err.value).replace(f"{tmp_path}/", "suites/")


@pytest.mark.parametrize(("kind", "params", "beside", "field", "says"), BAD)
def test_bad_settings_name_the_field(
    tmp_path: Path, kind: str, params: str, beside: str, field: str, says: str
) -> None:
    message = _load_error(tmp_path, _suite(kind, params, beside))
    assert message.startswith(f"suites/x.toml: [benchmark.b] {field}: "), message
    assert says in message, message


@pytest.mark.parametrize(
    ("kind", "params", "beside", "key", "hint"),
    [
        ("serving", "", "concurency = 2", "concurency", "did you mean 'concurrency'?"),
        ("serving", "input_len = 8", "", "params.input_len", "allowed: accelerators, base_url,"),
        ("local-gen", "gen_length = 8", "", "params.gen_length", "did you mean 'gen_len'?"),
        ("collectives", "", "nranks = 4", "nranks", "allowed: backend, check,"),
        ("command", "", 'command = "true"\nenvironment = {}', "environment", "allowed: command, env"),
    ],
)
def test_unknown_keys_are_refused(
    tmp_path: Path, kind: str, params: str, beside: str, key: str, hint: str
) -> None:
    message = _load_error(tmp_path, _suite(kind, params, beside))
    assert message.startswith(f"suites/x.toml: [benchmark.b] unknown key {key!r} ("), message
    assert hint in message, message


def test_errors_name_the_file_the_table_and_the_key(tmp_path: Path) -> None:
    def error(text: str) -> str:
        return _load_error(tmp_path, text)

    bench = '[[benchmark]]\nname = "serve"\nkind = "serving"\n'
    assert error('name = "x"\n' + bench + "concurency = 4\n") == (
        "suites/x.toml: [benchmark.serve] unknown key 'concurency' (did you mean 'concurrency'?)"
    )
    assert error('name = "x"\n[engine]\ncommand = "e"\nprot = 1\n' + bench).startswith(
        "suites/x.toml: [engine] unknown key 'prot' (did you mean 'port'?)"
    )
    assert error('name = "x"\ncolor = 1\n' + bench).startswith("suites/x.toml: unknown key 'color' (")
    assert (
        error('name = "x"\n[engine]\ncommand = "e"\nenv = { A = true }\n' + bench)
        == "suites/x.toml: [engine] env.A: must be a string or number, got True"
    )
    # two benchmarks with one name (other params): the position tells them apart
    two = 'name = "x"\n' + bench + "[benchmark.params]\nisl = 8\n" + bench + "[benchmark.params]\nisl = 0\n"
    assert error(two) == "suites/x.toml: [benchmark.serve #2] params.isl: must be >= 1, got 0"
    assert (
        error('name = "x"\n[[benchmark]]\nkind = "serving"\n')
        == "suites/x.toml: [benchmark #1] name: required"
    )


def test_good_settings_load(tmp_path: Path) -> None:
    suite = load_suite(
        write_suite(
            tmp_path,
            """
            name = "ok"
            [[benchmark]]
            name = "s"
            kind = "serving"
            base_url = "http://127.0.0.1:8000"
            goodput = ["ttft:500", "tpot:50"]
            [benchmark.params]
            request_rate = [1, 2.5, "inf"]
            burstiness = 0.5
            max_concurrency = 8
            [[benchmark]]
            name = "l"
            kind = "local-gen"
            params = { prompt_len = [16, 32], gen_len = 8, engine = "reference" }
            [[benchmark]]
            name = "c"
            kind = "collectives"
            params = { collectives = "all_gather", min_bytes = "1K", max_bytes = "1M", dtype = "bf16" }
            """,
        )
    )
    assert [b.kind for b in suite.benchmarks] == ["serving", "local-gen", "collectives"]


@pytest.mark.parametrize("path", sorted(SUITES_DIR.glob("*.toml")), ids=lambda p: p.name)
def test_example_suites_parse_and_validate(path: Path) -> None:
    suite = load_suite(path)
    assert suite.benchmarks
    kinds = {b.kind for b in suite.benchmarks}
    assert kinds <= {"serving", "local-gen", "collectives", "command"}


def test_example_suites_cover_the_hardware() -> None:
    names = {p.stem for p in SUITES_DIR.glob("*.toml")}
    assert {"cpu-reference", "h100", "mac-studio"} <= names
    cpu = load_suite(SUITES_DIR / "cpu-reference.toml")
    assert cpu.engine is not None and "{reference_engine}" in cpu.engine.command
    serving = next(b for b in cpu.benchmarks if b.kind == "serving")
    assert (serving.params["isl"], serving.params["osl"], serving.params["concurrency"]) == (32, 16, 2)
    coll = next(b for b in cpu.benchmarks if b.kind == "collectives")
    assert (coll.params["backend"], coll.params["np"]) == ("gloo", 2)
    h100 = load_suite(SUITES_DIR / "h100.toml")
    assert any(b.params.get("backend") == "nccl" for b in h100.benchmarks)
    assert any(b.params.get("isl") == 1024 and b.params.get("osl") == 1024 for b in h100.benchmarks)
    mac = load_suite(SUITES_DIR / "mac-studio.toml")
    assert {b.params.get("backend") for b in mac.benchmarks} >= {"mlx-jaccl", "mlx-ring"}
    assert (SUITES_DIR / "mac-studio-hosts.json").is_file()


def test_reference_engine_placeholder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    monkeypatch.setenv("BENCH_REFERENCE_MODEL", str(model))
    ref = reference_engine_command(4321).cmd
    assert "--port" in ref and "4321" in ref and str(model) in ref
    argv = engine_argv("{reference_engine} --n_threads 2", {"port": 4321})
    assert argv[:2] == ["/bin/sh", "-c"] and shlex.split(argv[2]) == [*ref, "--n_threads", "2"]
    assert engine_argv(["{reference_engine}", "--verbose", "{port}"], {"port": 4321}) == [
        *ref,
        "--verbose",
        "4321",
    ]
    assert engine_argv("serve --port {port}", {"port": 1}) == ["/bin/sh", "-c", "serve --port 1"]


def test_reference_engine_unavailable_is_a_setup_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .conftest import run

    monkeypatch.setenv("BENCH_REFERENCE_MODEL", str(tmp_path / "missing.gguf"))
    suite = load_suite(
        write_suite(
            tmp_path,
            """
            name = "ref"
            [engine]
            command = "{reference_engine}"
            health_url = "http://127.0.0.1:{port}/v1/models"
            [[benchmark]]
            name = "s"
            kind = "serving"
            [[benchmark]]
            name = "c"
            kind = "command"
            command = "true"
            """,
        )
    )
    out = run(suite, tmp_path)
    assert out.results == []
    assert [(f.benchmark, f.failure_class) for f in out.failures] == [("s", "setup"), ("c", "setup")]
    assert "reference engine unavailable" in out.failures[0].message
