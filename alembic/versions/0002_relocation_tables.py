"""relocation tables

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 06:46:35.387788
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from statewright.models.base import BigId, JSONType, UTCDateTime

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('organizations',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('slug', sa.String(length=100), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organizations')),
    sa.UniqueConstraint('slug', name=op.f('uq_organizations_slug'))
    )
    op.create_table('users',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('username', sa.String(length=150), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('is_unclaimed', sa.Boolean(), nullable=False),
    sa.Column('original_username', sa.String(length=150), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('organization_members',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('organization_id', BigId, nullable=False),
    sa.Column('user_id', BigId, nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.CheckConstraint("role IN ('owner', 'manager', 'member')", name=op.f('ck_organization_members_role')),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_organization_members_organization_id_organizations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_organization_members_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organization_members')),
    sa.UniqueConstraint('organization_id', 'user_id', name=op.f('uq_organization_members_organization_id_user_id'))
    )
    op.create_table('projects',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('organization_id', BigId, nullable=False),
    sa.Column('slug', sa.String(length=100), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_projects_organization_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_projects')),
    sa.UniqueConstraint('organization_id', 'slug', name=op.f('uq_projects_organization_id_slug'))
    )
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
    op.create_table('teams',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('organization_id', BigId, nullable=False),
    sa.Column('slug', sa.String(length=100), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_teams_organization_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_teams')),
    sa.UniqueConstraint('organization_id', 'slug', name=op.f('uq_teams_organization_id_slug'))
    )
    op.create_table('project_teams',
    sa.Column('project_id', BigId, nullable=False),
    sa.Column('team_id', BigId, nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_project_teams_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_project_teams_team_id_teams'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', 'team_id', name=op.f('pk_project_teams'))
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
    op.drop_table('project_teams')
    op.drop_table('teams')
    op.drop_table('relocations')
    op.drop_table('projects')
    op.drop_table('organization_members')
    op.drop_table('users')
    op.drop_table('organizations')
