"""report tables

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 07:16:57.277255
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


from statewright.models.base import BigId, UTCDateTime

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('report_schedules',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('report_date', sa.Date(), nullable=False),
    sa.Column('high_water', BigId, nullable=False),
    sa.Column('organizations', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('started_at', UTCDateTime(), nullable=False),
    sa.Column('finished_at', UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_schedules')),
    sa.UniqueConstraint('report_date', name=op.f('uq_report_schedules_report_date'))
    )
    op.create_table('report_deliveries',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('report_date', sa.Date(), nullable=False),
    sa.Column('organization_id', BigId, nullable=False),
    sa.Column('user_id', BigId, nullable=False),
    sa.Column('recipient', sa.String(length=254), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('sent_at', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_report_deliveries_organization_id_organizations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_report_deliveries_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_deliveries')),
    sa.UniqueConstraint('report_date', 'organization_id', 'user_id', name=op.f('uq_report_deliveries_report_date_organization_id_user_id'))
    )


def downgrade() -> None:
    op.drop_table('report_deliveries')
    op.drop_table('report_schedules')
