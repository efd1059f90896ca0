"""an installation's organizations, users, teams and projects (branch `installation`)

Revision ID: installation_0001
Revises:
Create Date: 2026-11-24 06:46:35.387788
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from statewright.models.base import BigId, UTCDateTime

revision: str = 'installation_0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ('installation',)
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


def downgrade() -> None:
    op.drop_table('project_teams')
    op.drop_table('teams')
    op.drop_table('projects')
    op.drop_table('organization_members')
    op.drop_table('users')
    op.drop_table('organizations')
