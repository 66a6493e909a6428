"""salutation: a contact's title in the salutation ('Bürgermeister', 'Hauptamtsleiterin')

Revision ID: 0003_salutation
Revises: 0002_bounces
Create Date: 2026-12-01 19:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0003_salutation"
down_revision: str | None = "0002_bounces"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "salutation_title", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.drop_column("salutation_title")
