"""runs listed newest first: an index on (created_at, id) for the console's keyset pages

Revision ID: 0010
Revises: 0009
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        op.f('ix_workflow_runs_created_at_id'), 'workflow_runs', ['created_at', 'id'], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f('ix_workflow_runs_created_at_id'), table_name='workflow_runs')
