"""Request bodies and listing filters of the analysis API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bench_server.kit.errors import InvalidInput
from bench_server.models import ALERT_STATES

State = Literal["new", "acknowledged", "ignored", "fixed"]
# `failure` stands for its three kinds.
KindFilter = Literal["regression", "improvement", "failure", "starts_failing", "flaky", "recovered"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StateIn(Strict):
    """A triage decision: the new state, and why. The same state with a note only adds the note."""

    state: State
    note: str | None = Field(default=None, max_length=10_000)


class DetectorValues(Strict):
    """Detector settings that override the built-in defaults (omitted: inherited)."""

    min_relative_change: float | None = Field(
        default=None, ge=0, le=10, description="smallest |change| alerted"
    )
    significance: float | None = Field(
        default=None, gt=0, lt=1, description="largest p-value of a change point"
    )
    min_points: int | None = Field(default=None, ge=2, le=1000, description="fewest commits on each side")
    window: int | None = Field(
        default=None, ge=4, le=100_000, description="most commits on each side a test uses"
    )
    check_significance: float | None = Field(
        default=None, gt=0, lt=1, description="largest p-value of the fast check of one commit"
    )
    confidence: float | None = Field(default=None, gt=0, lt=1, description="level of the confidence interval")


class ProjectValues(DetectorValues):
    """A project's defaults: detector settings for every metric, and when failures alert."""

    failure_window: int | None = Field(default=None, ge=4, le=1000, description="runs a failure rate counts")
    failure_streak: int | None = Field(
        default=None, ge=1, le=100, description="failing commits in a row that make 'starts failing'"
    )


class SettingsIn(Strict):
    """The whole analysis configuration of a project (PUT replaces it)."""

    defaults: ProjectValues = Field(default_factory=ProjectValues)
    metrics: dict[str, DetectorValues] = Field(default_factory=dict, max_length=1000)


def parse_states(text: str | None) -> tuple[str, ...]:
    """`new,acknowledged` -> ("new", "acknowledged"); refuses names that are not states."""
    states = tuple(s.strip() for s in (text or "").split(",") if s.strip())
    unknown = sorted(set(states) - set(ALERT_STATES))
    if unknown:
        raise InvalidInput(
            "state", f"not states: {', '.join(unknown)}; choose from {', '.join(ALERT_STATES)}"
        )
    return states


@dataclass(frozen=True)
class AlertFilters:
    project: str | None = None
    states: tuple[str, ...] = ()
    kind: str | None = None
    hardware_class: str | None = None
    suite: str | None = None
    commit: str | None = None  # the suspect commit's sha or a prefix of it
    benchmark: str | None = None
    metric: str | None = None
    branch: str | None = None
    incident_id: int | None = None


@dataclass(frozen=True)
class IncidentFilters:
    project: str | None = None
    states: tuple[str, ...] = ()
    kind: str | None = None  # incidents with an alert of this kind
    hardware_class: str | None = None
    suite: str | None = None
    commit: str | None = None


@dataclass(frozen=True)
class AnnotationFilters:
    project: str | None = None
    hardware_class: str | None = None
    kind: str | None = None
    commit: str | None = None
