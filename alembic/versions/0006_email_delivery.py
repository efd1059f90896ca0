"""relocation emails: attempts and undeliverable reason

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 02:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


from statewright.models.base import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('relocation_emails') as batch:
        batch.add_column(sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))
        batch.add_column(sa.Column('undeliverable_at', UTCDateTime(), nullable=True))
        batch.add_column(sa.Column('undeliverable_reason', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('relocation_emails') as batch:
        batch.drop_column('undeliverable_reason')
        batch.drop_column('undeliverable_at')
        batch.drop_column('attempts')
