"""tickscale: the roll-up's outbox figures from a covering index (replaces the campaign_id index)

Revision ID: 0004_tickscale
Revises: 0003_salutation
Create Date: 2026-12-02 02:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004_tickscale"
down_revision: str | None = "0003_salutation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ["campaign_id", "ags", "status", "is_test", "queued_at", "sent_at"]


def upgrade() -> None:
    with op.batch_alter_table("outboxmessage", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_campaign_mail", _COLUMNS, unique=False)
        batch_op.drop_index(batch_op.f("ix_outboxmessage_campaign_id"))


def downgrade() -> None:
    with op.batch_alter_table("outboxmessage", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outboxmessage_campaign_id"), ["campaign_id"], unique=False
        )
        batch_op.drop_index("ix_outbox_campaign_mail")
