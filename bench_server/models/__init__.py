"""All ORM models, imported here so Alembic sees one metadata."""

from bench_server.models.alerts import (
    ALERT_KINDS,
    ALERT_STATES,
    DETECTORS,
    FAILURE_KINDS,
    Alert,
    Annotation,
    Incident,
    TriageEvent,
)
from bench_server.models.analysis import AnalysedBatch, AnalysisSeries, AnalysisSettings
from bench_server.models.base import Base
from bench_server.models.catalog import Commit, HardwareClass, Machine, Project
from bench_server.models.jobs import (
    JOB_STATES,
    TOKEN_SCOPES,
    ApiToken,
    GithubStatus,
    Job,
    Run,
    Runner,
    WebhookDelivery,
)
from bench_server.models.results import (
    DIRECTIONS,
    FAILURE_CLASSES,
    Benchmark,
    Failure,
    IngestBatch,
    Metric,
    Result,
)
from bench_server.models.series import Series

__all__ = [
    "ALERT_KINDS",
    "ALERT_STATES",
    "DETECTORS",
    "FAILURE_KINDS",
    "DIRECTIONS",
    "FAILURE_CLASSES",
    "JOB_STATES",
    "TOKEN_SCOPES",
    "Alert",
    "AnalysedBatch",
    "AnalysisSeries",
    "AnalysisSettings",
    "Annotation",
    "ApiToken",
    "Base",
    "Benchmark",
    "Commit",
    "Failure",
    "GithubStatus",
    "HardwareClass",
    "Incident",
    "IngestBatch",
    "Job",
    "Machine",
    "Metric",
    "Project",
    "Result",
    "Run",
    "Runner",
    "TriageEvent",
    "Series",
    "WebhookDelivery",
]
