"""schedules as rows, and the index that retention purges by

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 02:10:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


from statewright.models.base import JSONType, UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('workflow_schedules',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('workflow', sa.String(length=100), nullable=False),
    sa.Column('cron', sa.String(length=200), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('params', JSONType, nullable=False),
    sa.Column('missed', sa.String(length=16), nullable=False),
    sa.Column('catch_up_limit', sa.Integer(), nullable=False),
    sa.Column('declared', sa.Boolean(), nullable=False),
    sa.Column('paused', sa.Boolean(), nullable=False),
    sa.Column('next_fire_at', UTCDateTime(), nullable=True),
    sa.Column('last_fired_at', UTCDateTime(), nullable=True),
    sa.Column('last_run_id', sa.String(length=32), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('updated_at', UTCDateTime(), nullable=False),
    sa.CheckConstraint("missed IN ('skip', 'catch_up')", name=op.f('ck_workflow_schedules_missed')),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_workflow_schedules'))
    )
    with op.batch_alter_table('workflow_schedules', schema=None) as batch_op:
        batch_op.create_index('ix_workflow_schedules_due', ['next_fire_at'], unique=False, postgresql_where=sa.text('NOT paused'), sqlite_where=sa.text('NOT paused'))

    with op.batch_alter_table('workflow_runs', schema=None) as batch_op:
        batch_op.create_index('ix_workflow_runs_finished', ['finished_at'], unique=False, postgresql_where=sa.text('finished_at IS NOT NULL'), sqlite_where=sa.text('finished_at IS NOT NULL'))


def downgrade() -> None:
    with op.batch_alter_table('workflow_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_workflow_runs_finished', postgresql_where=sa.text('finished_at IS NOT NULL'), sqlite_where=sa.text('finished_at IS NOT NULL'))

    with op.batch_alter_table('workflow_schedules', schema=None) as batch_op:
        batch_op.drop_index('ix_workflow_schedules_due', postgresql_where=sa.text('NOT paused'), sqlite_where=sa.text('NOT paused'))

    op.drop_table('workflow_schedules')
