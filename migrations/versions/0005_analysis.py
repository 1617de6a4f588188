"""analysis: series state, alerts with their series and numbers, incidents with a state, triage
history, per-project settings, and the batches the analysis has seen

- analysis_series: one comparability key of the default branch (project, branch, benchmark,
  metric, hardware class, machine fingerprint; or a benchmark's failures on a hardware class)
  with the last analysed length, a hash of the analysed samples and the change points found.
- alerts: the series they belong to (unique per series, branch, kind and suspect commit, so
  re-analysis finds the same rows), the detector, the suite, the relative change with its
  confidence interval and p-value (magnitude and significance renamed), the levels before and
  after, a flaky benchmark's failure rate, and the commit that fixed it. Kinds are regression,
  improvement and the failure kinds starts_failing, flaky, recovered; `notes` goes (notes live
  in the triage history).
- incidents: a state, the start of the suspect range, a summary; one per project and commit.
- triage_events: who changed an incident's or alert's state, when, from, to, with a note.
- annotations: details and a dedupe key for those the analysis writes (fingerprint changes).
- analysis_settings: detector settings per project, for every metric ('*') or one.
- analysed_batches: batches whose `analysis.update` finished (beat re-sends the others).

Nothing wrote alerts or incidents before this revision; the upgrade refuses to run over rows
someone added by hand (they have no series), and the downgrade removes what the analysis wrote.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
)
STATES = "state IN ('new', 'acknowledged', 'ignored', 'fixed')"
KINDS = "kind IN ('regression', 'improvement', 'starts_failing', 'flaky', 'recovered')"
OLD_KINDS = "kind IN ('regression', 'improvement', 'failure')"
DETECTORS = "detector IN ('change_point', 'check', 'failures')"


def _refuse_rows(table: str) -> None:
    count = op.get_bind().execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
    if count:
        raise RuntimeError(
            f"{table} has {count} rows written before the analysis existed; they belong to no "
            f"series. Delete them (DELETE FROM {table}) and upgrade again."
        )


def upgrade() -> None:
    _refuse_rows("alerts")
    _refuse_rows("incidents")
    op.create_table(
        "analysis_series",
        sa.Column("project_id", ID, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("branch", sa.String(length=200), nullable=False),
        sa.Column("hardware_class_id", ID, nullable=False),
        sa.Column("suite", sa.String(length=100), nullable=False),
        sa.Column("benchmark_id", ID, nullable=True),
        sa.Column("metric_id", ID, nullable=True),
        sa.Column("machine_id", ID, nullable=True),
        sa.Column("fingerprint_hash", sa.String(length=64), nullable=True),
        sa.Column("analysed_length", sa.Integer(), nullable=False),
        sa.Column("prefix_hash", sa.String(length=64), nullable=True),
        sa.Column("settings_hash", sa.String(length=64), nullable=True),
        sa.Column("change_points", JSON, nullable=False),
        sa.Column("analysed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('metric', 'failures')", name=op.f("ck_analysis_series_kind")),
        sa.ForeignKeyConstraint(
            ["benchmark_id"], ["benchmarks.id"], name=op.f("fk_analysis_series_benchmark_id_benchmarks")
        ),
        sa.ForeignKeyConstraint(
            ["hardware_class_id"],
            ["hardware_classes.id"],
            name=op.f("fk_analysis_series_hardware_class_id_hardware_classes"),
        ),
        sa.ForeignKeyConstraint(
            ["machine_id"], ["machines.id"], name=op.f("fk_analysis_series_machine_id_machines")
        ),
        sa.ForeignKeyConstraint(
            ["metric_id"], ["metrics.id"], name=op.f("fk_analysis_series_metric_id_metrics")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_analysis_series_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analysis_series")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_analysis_series_key_hash")),
    )
    with op.batch_alter_table("analysis_series", schema=None) as batch_op:
        batch_op.create_index(
            "ix_analysis_series_group", ["project_id", "hardware_class_id", "benchmark_id"], unique=False
        )

    op.create_table(
        "analysis_settings",
        sa.Column("project_id", ID, nullable=False),
        sa.Column("metric", sa.String(length=100), nullable=False),
        sa.Column("settings", JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_analysis_settings_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analysis_settings")),
        sa.UniqueConstraint("project_id", "metric", name=op.f("uq_analysis_settings_project_id_metric")),
    )

    op.create_table(
        "analysed_batches",
        sa.Column("batch_id", ID, nullable=False),
        sa.Column("analysed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["ingest_batches.id"],
            name=op.f("fk_analysed_batches_batch_id_ingest_batches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_analysed_batches")),
    )

    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("series_id", ID, nullable=False))
        batch_op.add_column(sa.Column("detector", sa.String(length=20), nullable=False))
        batch_op.add_column(sa.Column("suite", sa.String(length=100), nullable=False))
        batch_op.add_column(sa.Column("fixed_by_commit_id", ID, nullable=True))
        batch_op.alter_column("magnitude", new_column_name="relative_change", existing_type=sa.Float())
        batch_op.alter_column("significance", new_column_name="p_value", existing_type=sa.Float())
        batch_op.add_column(sa.Column("ci_low", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("ci_high", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("before_value", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("after_value", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("failure_rate", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("failure_window", sa.Integer(), nullable=True))
        batch_op.alter_column("branch", existing_type=sa.String(length=200), nullable=False)
        batch_op.drop_column("notes")
        batch_op.drop_constraint(batch_op.f("ck_alerts_kind"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_alerts_kind"), sa.text(KINDS))
        batch_op.create_check_constraint(batch_op.f("ck_alerts_detector"), sa.text(DETECTORS))
        batch_op.create_index("ix_alerts_first_bad", ["first_bad_commit_id"], unique=False)
        batch_op.create_unique_constraint(
            batch_op.f("uq_alerts_series_id_branch_kind_first_bad_commit_id"),
            ["series_id", "branch", "kind", "first_bad_commit_id"],
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_alerts_series_id_analysis_series"),
            "analysis_series",
            ["series_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_alerts_fixed_by_commit_id_commits"),
            "commits",
            ["fixed_by_commit_id"],
            ["id"],
            ondelete="SET NULL",
        )

    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_good_commit_id", ID, nullable=True))
        batch_op.add_column(sa.Column("state", sa.String(length=20), nullable=False))
        batch_op.add_column(sa.Column("summary", JSON, nullable=False))
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False))
        batch_op.create_check_constraint(batch_op.f("ck_incidents_state"), sa.text(STATES))
        batch_op.create_unique_constraint(
            batch_op.f("uq_incidents_project_id_commit_id"), ["project_id", "commit_id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_incidents_last_good_commit_id_commits"),
            "commits",
            ["last_good_commit_id"],
            ["id"],
            ondelete="SET NULL",
        )

    op.create_table(
        "triage_events",
        sa.Column("incident_id", ID, nullable=True),
        sa.Column("alert_id", ID, nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("token_id", ID, nullable=True),
        sa.Column("from_state", sa.String(length=20), nullable=True),
        sa.Column("to_state", sa.String(length=20), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(incident_id IS NULL) <> (alert_id IS NULL)", name=op.f("ck_triage_events_one_subject")
        ),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_triage_events_alert_id_alerts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_triage_events_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["token_id"],
            ["api_tokens.id"],
            name=op.f("fk_triage_events_token_id_api_tokens"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_triage_events")),
    )
    with op.batch_alter_table("triage_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_triage_events_alert_id"), ["alert_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_triage_events_incident_id"), ["incident_id"], unique=False)

    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("details", JSON, nullable=True))
        batch_op.add_column(sa.Column("dedupe_key", sa.String(length=200), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_annotations_dedupe_key"), ["dedupe_key"])


def downgrade() -> None:
    # Everything in these rows came from the analysis; the old columns cannot hold it.
    op.drop_table("triage_events")
    op.execute("DELETE FROM alerts")
    op.execute("DELETE FROM incidents")
    op.execute("DELETE FROM annotations WHERE dedupe_key IS NOT NULL")

    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_annotations_dedupe_key"), type_="unique")
        batch_op.drop_column("dedupe_key")
        batch_op.drop_column("details")

    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_incidents_last_good_commit_id_commits"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("uq_incidents_project_id_commit_id"), type_="unique")
        batch_op.drop_constraint(batch_op.f("ck_incidents_state"), type_="check")
        batch_op.drop_column("updated_at")
        batch_op.drop_column("summary")
        batch_op.drop_column("state")
        batch_op.drop_column("last_good_commit_id")

    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_alerts_fixed_by_commit_id_commits"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_alerts_series_id_analysis_series"), type_="foreignkey")
        batch_op.drop_constraint(
            batch_op.f("uq_alerts_series_id_branch_kind_first_bad_commit_id"), type_="unique"
        )
        batch_op.drop_index("ix_alerts_first_bad")
        batch_op.drop_constraint(batch_op.f("ck_alerts_detector"), type_="check")
        batch_op.drop_constraint(batch_op.f("ck_alerts_kind"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_alerts_kind"), sa.text(OLD_KINDS))
        batch_op.add_column(sa.Column("notes", sa.Text(), nullable=True))
        batch_op.alter_column("branch", existing_type=sa.String(length=200), nullable=True)
        batch_op.drop_column("failure_window")
        batch_op.drop_column("failure_rate")
        batch_op.drop_column("after_value")
        batch_op.drop_column("before_value")
        batch_op.drop_column("ci_high")
        batch_op.drop_column("ci_low")
        batch_op.alter_column("p_value", new_column_name="significance", existing_type=sa.Float())
        batch_op.alter_column("relative_change", new_column_name="magnitude", existing_type=sa.Float())
        batch_op.drop_column("fixed_by_commit_id")
        batch_op.drop_column("suite")
        batch_op.drop_column("detector")
        batch_op.drop_column("series_id")

    op.drop_table("analysed_batches")
    op.drop_table("analysis_settings")
    with op.batch_alter_table("analysis_series", schema=None) as batch_op:
        batch_op.drop_index("ix_analysis_series_group")
    op.drop_table("analysis_series")
