"""child runs and Map: links from parents to children and items, Map counters, and the
count of a run's children still running

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from statewright.models.base import BigId, JSONType, UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("workflow_runs") as batch:
        batch.add_column(
            sa.Column("children_pending", sa.Integer(), nullable=False, server_default="0")
        )
    op.create_table(
        "workflow_maps",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("parent_run_id", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=100), nullable=False),
        sa.Column("visit", sa.Integer(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.Column("last_item", JSONType, nullable=True),
        sa.Column("queue", sa.String(length=200), nullable=False),
        sa.Column("started", sa.BigInteger(), nullable=False),
        sa.Column("done", sa.BigInteger(), nullable=False),
        sa.Column("failed", sa.BigInteger(), nullable=False),
        sa.Column("exhausted", sa.Boolean(), nullable=False),
        sa.Column("filling", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["parent_run_id"],
            ["workflow_runs.id"],
            name=op.f("fk_workflow_maps_parent_run_id_workflow_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_maps")),
        sa.UniqueConstraint(
            "parent_run_id", "visit", name=op.f("uq_workflow_maps_parent_run_id_visit")
        ),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "workflow_children",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("parent_run_id", sa.String(length=32), nullable=False),
        sa.Column("parent_state", sa.String(length=100), nullable=False),
        sa.Column("visit", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("map_id", sa.BigInteger(), nullable=True),
        sa.Column("position", sa.BigInteger(), nullable=True),
        sa.Column("child_run_id", sa.String(length=32), nullable=True),
        sa.Column("workflow", sa.String(length=200), nullable=False),
        sa.Column("item", JSONType, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("result", JSONType, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["map_id"],
            ["workflow_maps.id"],
            name=op.f("fk_workflow_children_map_id_workflow_maps"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_run_id"],
            ["workflow_runs.id"],
            name=op.f("fk_workflow_children_parent_run_id_workflow_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_children")),
        sa.UniqueConstraint(
            "parent_run_id",
            "visit",
            "key",
            name=op.f("uq_workflow_children_parent_run_id_visit_key"),
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_workflow_children_child_run_id", "workflow_children", ["child_run_id"], unique=False
    )
    op.create_index(
        "ix_workflow_children_map_status",
        "workflow_children",
        ["map_id", "status", "position"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_workflow_children_map_status", table_name="workflow_children")
    op.drop_index("ix_workflow_children_child_run_id", table_name="workflow_children")
    op.drop_table("workflow_children")
    op.drop_table("workflow_maps")
    with op.batch_alter_table("workflow_runs") as batch:
        batch.drop_column("children_pending")
