"""Jobs: why a job is in its status, when the platform put it there (a paused job's reason).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

Set by the platform when it changes a job's status on its own (a webhook target answered 410
Gone: the job is paused, and its owner must see why); cleared when a person changes the status.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("status_reason", sa.Text(), nullable=True))
    op.create_check_constraint(
        op.f("ck_jobs_status_reason_length"), "jobs", "char_length(status_reason) <= 500"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_jobs_status_reason_length"), "jobs", type_="check")
    op.drop_column("jobs", "status_reason")
