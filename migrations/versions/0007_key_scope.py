"""idempotency keys scoped to their poster; webhook deliveries keyed by their event

`ingest_batches.key_scope`: an idempotency key is unique per poster ("runner:<id>" for a
registered runner's tokens, "token:<name>" for any other token: a rotated token of the same name
keeps its keys), no longer across the whole
service, so another token posting first under a runner's predictable key cannot make the runner's
real batch a 409. Batches stored before this revision get the scope "legacy", which every poster's
lookup also reads: their keys keep answering as they did.

`webhook_deliveries.event_key`: what the event says, hashed, so a captured body and signature
re-sent with a fresh delivery id does not queue another run.

Downgrade: keys become global again; a key used by two posters keeps its oldest batch's key and
the others become "<key[:180]>#<batch id>" so the old unique constraint can be restored.

Revision ID: 0007_key_scope
Revises: 0006_series_catalog
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_key_scope"
down_revision: str | None = "0006_series_catalog"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ingest_batches", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("key_scope", sa.String(length=210), nullable=False, server_default="legacy")
        )
    with op.batch_alter_table("ingest_batches", schema=None) as batch_op:
        batch_op.alter_column("key_scope", server_default=None)
        batch_op.drop_constraint(batch_op.f("uq_ingest_batches_idempotency_key"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_ingest_batches_key_scope_idempotency_key"), ["key_scope", "idempotency_key"]
        )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("event_key", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_webhook_deliveries_event_key"), ["event_key"])


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_webhook_deliveries_event_key"), type_="unique")
        batch_op.drop_column("event_key")
    # Keys used by more than one poster: all but the oldest batch get a key of their own.
    op.execute(
        "UPDATE ingest_batches SET idempotency_key = substr(idempotency_key, 1, 180) || '#' || id "
        "WHERE id NOT IN (SELECT min(id) FROM ingest_batches GROUP BY idempotency_key)"
    )
    with op.batch_alter_table("ingest_batches", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_ingest_batches_key_scope_idempotency_key"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_ingest_batches_idempotency_key"), ["idempotency_key"]
        )
        batch_op.drop_column("key_scope")
