"""loan applications (branch `loans`)

Revision ID: loans_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "loans_0001"
down_revision = None
#: The branch LoanApplication.migrations names; `statewright migrate` applies it.
branch_labels = ("loans",)
#: statewright's first revision (it makes workflow_runs), for a foreign key to it.
depends_on = None


def upgrade() -> None:
    op.create_table(
        "loan_applications",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("loan_number", sa.String(40), nullable=False, unique=True),
        sa.Column("run_id", sa.String(32), nullable=False, unique=True),
        sa.Column("applicant", sa.String(200), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("credit_score", sa.Integer(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("loan_applications")
