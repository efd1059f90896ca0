"""engine tables

Revision ID: 0001
Revises:
Create Date: 2026-11-24 06:18:58.539213
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from statewright.models.base import BigId, JSONType, UTCDateTime

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('workflow_outbox',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('task_name', sa.String(length=200), nullable=False),
    sa.Column('args', JSONType, nullable=False),
    sa.Column('kwargs', JSONType, nullable=False),
    sa.Column('queue', sa.String(length=200), nullable=True),
    sa.Column('run_id', sa.String(length=32), nullable=True),
    sa.Column('token', sa.Integer(), nullable=True),
    sa.Column('not_before', UTCDateTime(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workflow_outbox')),
    sqlite_autoincrement=True,
    )
    with op.batch_alter_table('workflow_outbox', schema=None) as batch_op:
        batch_op.create_index('ix_workflow_outbox_due', ['not_before'], unique=False)
        batch_op.create_index('ix_workflow_outbox_run_id', ['run_id'], unique=False)

    op.create_table('workflow_runs',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('workflow', sa.String(length=100), nullable=False),
    sa.Column('definition_version', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('params', JSONType, nullable=False),
    sa.Column('context', JSONType, nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('polls', sa.Integer(), nullable=False),
    sa.Column('token', sa.Integer(), nullable=False),
    sa.Column('claimed', sa.Boolean(), nullable=False),
    sa.Column('lease_expires_at', UTCDateTime(), nullable=True),
    sa.Column('state_entered_at', UTCDateTime(), nullable=False),
    sa.Column('entry_seq', sa.Integer(), nullable=False),
    sa.Column('history_len', sa.Integer(), nullable=False),
    sa.Column('pause_requested', sa.Boolean(), nullable=False),
    sa.Column('pause_at', sa.String(length=100), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('failure_detail', JSONType, nullable=True),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('updated_at', UTCDateTime(), nullable=False),
    sa.Column('finished_at', UTCDateTime(), nullable=True),
    sa.CheckConstraint("status IN ('running', 'paused', 'succeeded', 'failed', 'cancelled')", name=op.f('ck_workflow_runs_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workflow_runs')),
    sa.UniqueConstraint('workflow', 'idempotency_key', name=op.f('uq_workflow_runs_workflow_idempotency_key'))
    )
    with op.batch_alter_table('workflow_runs', schema=None) as batch_op:
        batch_op.create_index('ix_workflow_runs_lease', ['lease_expires_at'], unique=False, postgresql_where=sa.text("status = 'running'"), sqlite_where=sa.text("status = 'running'"))
        batch_op.create_index('ix_workflow_runs_status_created', ['status', 'created_at'], unique=False)
        batch_op.create_index('ix_workflow_runs_workflow_status_created', ['workflow', 'status', 'created_at'], unique=False)

    op.create_table('workflow_transitions',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('from_state', sa.String(length=100), nullable=True),
    sa.Column('trigger', sa.String(length=100), nullable=False),
    sa.Column('to_state', sa.String(length=100), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('token', sa.Integer(), nullable=False),
    sa.Column('at', UTCDateTime(), nullable=False),
    sa.Column('duration_ms', sa.Float(), nullable=True),
    sa.Column('detail', JSONType, nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['workflow_runs.id'], name=op.f('fk_workflow_transitions_run_id_workflow_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workflow_transitions')),
    sa.UniqueConstraint('run_id', 'seq', name=op.f('uq_workflow_transitions_run_id_seq'))
    )


def downgrade() -> None:
    op.drop_table('workflow_transitions')
    with op.batch_alter_table('workflow_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_workflow_runs_workflow_status_created')
        batch_op.drop_index('ix_workflow_runs_status_created')
        batch_op.drop_index('ix_workflow_runs_lease', postgresql_where=sa.text("status = 'running'"), sqlite_where=sa.text("status = 'running'"))

    op.drop_table('workflow_runs')
    with op.batch_alter_table('workflow_outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_workflow_outbox_run_id')
        batch_op.drop_index('ix_workflow_outbox_due')

    op.drop_table('workflow_outbox')
