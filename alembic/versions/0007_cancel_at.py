"""cancel at a state

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-02 02:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('workflow_runs', sa.Column('cancel_at', sa.String(length=100), nullable=True))


def downgrade() -> None:
    op.drop_column('workflow_runs', 'cancel_at')
