"""Engine lifecycle: start an inference engine, wait until healthy, stop it, classify failures."""

from ..process import StopResult, classify_exit, free_port, looks_like_oom
from .lifecycle import EngineFailure, EngineProcess
from .reference import (
    REFERENCE_EOG_TOKENS,
    REFERENCE_MODEL_ALIAS,
    EngineCommand,
    engine_version,
    reference_engine_command,
    reference_model_path,
)

__all__ = [
    "REFERENCE_EOG_TOKENS",
    "REFERENCE_MODEL_ALIAS",
    "EngineCommand",
    "EngineFailure",
    "EngineProcess",
    "StopResult",
    "classify_exit",
    "engine_version",
    "free_port",
    "looks_like_oom",
    "reference_engine_command",
    "reference_model_path",
]
