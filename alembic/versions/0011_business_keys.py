"""business key of a run

Revision ID: 0011
Revises: 0010
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('workflow_runs') as batch:
        batch.add_column(sa.Column('business_key', sa.String(length=200), nullable=True))
    op.create_index(
        'ix_workflow_runs_business_key',
        'workflow_runs',
        ['business_key', 'created_at'],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index('ix_workflow_runs_business_key', table_name='workflow_runs')
    with op.batch_alter_table('workflow_runs') as batch:
        batch.drop_column('business_key')
