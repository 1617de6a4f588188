"""jobs dispatch: project suites, run priority, one active job per identity

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 03:10:00

- projects.suites: the suites a trigger runs when it names none (NULL means ["default"]).
- runs.priority: priority of the run's jobs (NULL: derived from the ref).
- uq_jobs_active_identity: a partial unique index, the database-level guard against two
  active (queued/claimed/running), unforced jobs for the same commit x suite x hardware class.
  Partial indexes exist on PostgreSQL and SQLite alike.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE_UNFORCED = "state IN ('queued', 'claimed', 'running') AND forced = false"


def upgrade() -> None:
    json_type = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('suites', json_type, nullable=True))
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('priority', sa.Integer(), nullable=True))
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index(
            'uq_jobs_active_identity',
            ['project_id', 'commit_id', 'suite', 'hardware_class_id'],
            unique=True,
            postgresql_where=sa.text(ACTIVE_UNFORCED),
            sqlite_where=sa.text(ACTIVE_UNFORCED),
        )


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('uq_jobs_active_identity')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('priority')
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_column('suites')
