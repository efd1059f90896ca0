"""relocation creator, retry source and owner index

Revision ID: relocation_0003
Revises: relocation_0002
Create Date: 2026-12-02 02:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "relocation_0003"
down_revision: str | None = "relocation_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('relocations', sa.Column('creator_email', sa.String(length=254), nullable=True))
    op.add_column('relocations', sa.Column('retry_of', sa.String(length=32), nullable=True))
    # relocations started before creators were recorded were started by their owners
    op.execute('UPDATE relocations SET creator_email = owner_email')
    op.create_index(op.f('ix_relocations_owner_email'), 'relocations', ['owner_email'])


def downgrade() -> None:
    op.drop_index(op.f('ix_relocations_owner_email'), table_name='relocations')
    op.drop_column('relocations', 'retry_of')
    op.drop_column('relocations', 'creator_email')
