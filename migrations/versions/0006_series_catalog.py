"""series catalog; power and price per hour of a hardware class

Revision ID: 0006_series_catalog
Revises: 0005
Create Date: 2026-12-01 21:00:00

- series: one row per comparability key (project, branch, benchmark, metric, hardware class)
  that has results, with its first and last commit, the value at the last commit and its point
  and result counts. Ingest keeps it up to date in its own transaction; the website lists series
  from it instead of running a DISTINCT over results. Backfilled here from results.
- hardware_classes.power_w, hardware_classes.price_per_hour: set by an admin for the website's
  per-watt and per-dollar-hour comparisons (NULL: not configured).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_series_catalog"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
KEY = "project_id, branch, benchmark_id, metric_id, hardware_class_id"

# Per commit of each series its mean and count (what a point of GET /api/v1/series is), then per
# series the newest point (by first-parent order) with the series' first point and totals.
BACKFILL = f"""
INSERT INTO series ({KEY}, first_commit_id, first_order_key, last_commit_id, last_order_key,
                    last_value, last_n, point_count, result_count, updated_at, created_at)
SELECT {KEY}, first_commit_id, first_order_key, commit_id, order_key,
       value, n, point_count, result_count, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP
FROM (
  SELECT points.*,
         row_number() OVER (PARTITION BY {KEY} ORDER BY order_key DESC, commit_id DESC) AS from_last,
         first_value(commit_id) OVER (PARTITION BY {KEY} ORDER BY order_key, commit_id) AS first_commit_id,
         first_value(order_key) OVER (PARTITION BY {KEY} ORDER BY order_key, commit_id) AS first_order_key,
         count(*) OVER (PARTITION BY {KEY}) AS point_count,
         sum(n) OVER (PARTITION BY {KEY}) AS result_count
  FROM (
    SELECT r.project_id, r.branch, r.benchmark_id, r.metric_id, r.hardware_class_id, r.commit_id,
           c.order_key, avg(r.value) AS value, count(*) AS n
    FROM results r JOIN commits c ON c.id = r.commit_id
    WHERE r.branch IS NOT NULL
    GROUP BY r.project_id, r.branch, r.benchmark_id, r.metric_id, r.hardware_class_id, r.commit_id,
             c.order_key
  ) points
) ranked
WHERE from_last = 1
"""


def upgrade() -> None:
    op.create_table(
        "series",
        sa.Column("project_id", BIG_ID, nullable=False),
        sa.Column("branch", sa.String(length=200), nullable=False),
        sa.Column("benchmark_id", BIG_ID, nullable=False),
        sa.Column("metric_id", BIG_ID, nullable=False),
        sa.Column("hardware_class_id", BIG_ID, nullable=False),
        sa.Column("first_commit_id", BIG_ID, nullable=False),
        sa.Column("first_order_key", sa.BigInteger(), nullable=False),
        sa.Column("last_commit_id", BIG_ID, nullable=False),
        sa.Column("last_order_key", sa.BigInteger(), nullable=False),
        sa.Column("last_value", sa.Float(), nullable=False),
        sa.Column("last_n", sa.Integer(), nullable=False),
        sa.Column("point_count", sa.Integer(), nullable=False),
        sa.Column("result_count", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["benchmark_id"], ["benchmarks.id"], name=op.f("fk_series_benchmark_id_benchmarks")
        ),
        sa.ForeignKeyConstraint(
            ["first_commit_id"],
            ["commits.id"],
            name=op.f("fk_series_first_commit_id_commits"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["hardware_class_id"],
            ["hardware_classes.id"],
            name=op.f("fk_series_hardware_class_id_hardware_classes"),
        ),
        sa.ForeignKeyConstraint(
            ["last_commit_id"], ["commits.id"], name=op.f("fk_series_last_commit_id_commits"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["metric_id"], ["metrics.id"], name=op.f("fk_series_metric_id_metrics")),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_series_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_series")),
        sa.UniqueConstraint(
            "project_id", "benchmark_id", "metric_id", "hardware_class_id", "branch", name="uq_series_key"
        ),
    )
    op.create_index("ix_series_project_hardware", "series", ["project_id", "branch", "hardware_class_id"])
    op.create_index("ix_series_project_metric", "series", ["project_id", "branch", "metric_id"])
    op.execute(BACKFILL)

    with op.batch_alter_table("hardware_classes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("power_w", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("price_per_hour", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("hardware_classes", schema=None) as batch_op:
        batch_op.drop_column("price_per_hour")
        batch_op.drop_column("power_w")
    op.drop_index("ix_series_project_metric", table_name="series")
    op.drop_index("ix_series_project_hardware", table_name="series")
    op.drop_table("series")
