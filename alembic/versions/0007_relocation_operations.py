"""cancel at a state; relocation creator, retry source and owner index

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 02:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('workflow_runs', sa.Column('cancel_at', sa.String(length=100), nullable=True))
    op.add_column('relocations', sa.Column('creator_email', sa.String(length=254), nullable=True))
    op.add_column('relocations', sa.Column('retry_of', sa.String(length=32), nullable=True))
    # relocations started before creators were recorded were started by their owners
    op.execute('UPDATE relocations SET creator_email = owner_email')
    op.create_index(op.f('ix_relocations_owner_email'), 'relocations', ['owner_email'])


def downgrade() -> None:
    op.drop_index(op.f('ix_relocations_owner_email'), table_name='relocations')
    op.drop_column('relocations', 'retry_of')
    op.drop_column('relocations', 'creator_email')
    op.drop_column('workflow_runs', 'cancel_at')
