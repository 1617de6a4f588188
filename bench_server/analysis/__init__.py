"""Analysis: change points, regressions and improvements over benchmark series.

`detector` is the pure core (numbers in, verdicts out); the database, API and task wiring
build on it.
"""

from bench_server.analysis.detector import (
    ChangeKind,
    ChangePoint,
    DetectorSettings,
    Direction,
    Verdict,
    VerdictStatus,
    check_new_point,
    detect_change_points,
    restores_level,
    update_change_points,
)

__all__ = [
    "ChangeKind",
    "ChangePoint",
    "DetectorSettings",
    "Direction",
    "Verdict",
    "VerdictStatus",
    "check_new_point",
    "detect_change_points",
    "restores_level",
    "update_change_points",
]
