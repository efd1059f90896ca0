"""durable task deliveries: an outbox row of a plain task outlives its broker message

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # plain ADD COLUMN: a batch copy of the table on SQLite would lose its AUTOINCREMENT
    op.add_column(
        "workflow_outbox", sa.Column("attempts", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column(
        "workflow_outbox", sa.Column("sends", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column(
        "workflow_outbox",
        sa.Column("claimed", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table(
        "workflow_outbox", schema=None, table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.drop_column("claimed")
        batch_op.drop_column("sends")
        batch_op.drop_column("attempts")
