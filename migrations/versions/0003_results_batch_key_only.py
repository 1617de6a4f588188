"""results: keep only the batch foreign key; covering series index

Results are the one large append-only table and ingest is its only writer: the project,
commit, machine, hardware class and job columns are copies of the batch's (which has foreign
keys for them), and benchmarks and metrics are never deleted. Checking a foreign key per row
per column cost more than the insert (a 1,000-value COPY: 92 ms with eight keys, 18 ms with
none). The series index also carries id and value on PostgreSQL, so a series is read by an
index-only scan.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 03:13:41.057755
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SERIES_COLUMNS = ["project_id", "benchmark_id", "metric_id", "hardware_class_id", "branch", "commit_id"]


def upgrade() -> None:
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_results_machine_id_machines"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_results_commit_id_commits"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_results_hardware_class_id_hardware_classes"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_results_project_id_projects"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_results_job_id_jobs"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_results_benchmark_id_benchmarks"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_results_metric_id_metrics"), type_="foreignkey")
    op.drop_index("ix_results_series", table_name="results")
    op.create_index("ix_results_series", "results", SERIES_COLUMNS, postgresql_include=["id", "value"])


def downgrade() -> None:
    op.drop_index("ix_results_series", table_name="results")
    op.create_index("ix_results_series", "results", SERIES_COLUMNS)
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_results_metric_id_metrics"), "metrics", ["metric_id"], ["id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_results_benchmark_id_benchmarks"), "benchmarks", ["benchmark_id"], ["id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_results_job_id_jobs"), "jobs", ["job_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_results_project_id_projects"), "projects", ["project_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_results_hardware_class_id_hardware_classes"), "hardware_classes",
            ["hardware_class_id"], ["id"],
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_results_commit_id_commits"), "commits", ["commit_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_results_machine_id_machines"), "machines", ["machine_id"], ["id"]
        )
