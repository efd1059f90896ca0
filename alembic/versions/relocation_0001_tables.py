"""relocation's own tables (branch `relocation`)

Revision ID: relocation_0001
Revises:
Create Date: 2026-11-24 06:46:35.387788
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from statewright.models.base import BigId, JSONType, UTCDateTime

revision: str = 'relocation_0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ('relocation',)
depends_on: str | Sequence[str] | None = ('0001', 'installation_0001')


def upgrade() -> None:
    op.create_table('relocations',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('owner_email', sa.String(length=254), nullable=False),
    sa.Column('want_org_slugs', JSONType, nullable=False),
    sa.Column('want_usernames', JSONType, nullable=True),
    sa.Column('latest_notified', sa.String(length=40), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['workflow_runs.id'], name=op.f('fk_relocations_run_id_workflow_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_relocations')),
    sa.UniqueConstraint('run_id', name=op.f('uq_relocations_run_id'))
    )
    op.create_table('relocation_emails',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('relocation_id', BigId, nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('recipient', sa.String(length=254), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('sent_at', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['relocation_id'], ['relocations.id'], name=op.f('fk_relocation_emails_relocation_id_relocations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_relocation_emails')),
    sa.UniqueConstraint('relocation_id', 'kind', 'recipient', name=op.f('uq_relocation_emails_relocation_id_kind_recipient'))
    )
    op.create_table('relocation_files',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('relocation_id', BigId, nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['relocation_id'], ['relocations.id'], name=op.f('fk_relocation_files_relocation_id_relocations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_relocation_files')),
    sa.UniqueConstraint('relocation_id', 'kind', name=op.f('uq_relocation_files_relocation_id_kind'))
    )
    op.create_table('relocation_validations',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('relocation_id', BigId, nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['relocation_id'], ['relocations.id'], name=op.f('fk_relocation_validations_relocation_id_relocations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_relocation_validations')),
    sa.UniqueConstraint('relocation_id', name=op.f('uq_relocation_validations_relocation_id'))
    )
    op.create_table('relocation_validation_attempts',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('validation_id', BigId, nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('findings', JSONType, nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('started_at', UTCDateTime(), nullable=False),
    sa.Column('finished_at', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['validation_id'], ['relocation_validations.id'], name=op.f('fk_relocation_validation_attempts_validation_id_relocation_validations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_relocation_validation_attempts')),
    sa.UniqueConstraint('validation_id', 'number', name=op.f('uq_relocation_validation_attempts_validation_id_number'))
    )


def downgrade() -> None:
    op.drop_table('relocation_validation_attempts')
    op.drop_table('relocation_validations')
    op.drop_table('relocation_files')
    op.drop_table('relocation_emails')
    op.drop_table('relocations')
