"""github_statuses: the job state GitHub last acknowledged as each job's commit status

A status post that exhausts its retries is no longer lost: beat compares each job's state with
the state GitHub acknowledged and posts the missing ones again (`github.resend_statuses`).
Jobs already in a reported state when this runs are recorded as acknowledged (http_status NULL),
so the first sweep after the upgrade does not post every recent job's status once more.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 20:15:49.075223
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REPORTED_STATES = "('running', 'succeeded', 'failed', 'cancelled', 'timed_out')"


def upgrade() -> None:
    op.create_table(
        "github_statuses",
        sa.Column("job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("job_state", sa.String(length=20), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_github_statuses_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_github_statuses")),
    )
    op.execute(
        "INSERT INTO github_statuses (job_id, job_state, http_status, reported_at) "
        f"SELECT id, state, NULL, CURRENT_TIMESTAMP FROM jobs WHERE state IN {REPORTED_STATES}"
    )


def downgrade() -> None:
    op.drop_table("github_statuses")
