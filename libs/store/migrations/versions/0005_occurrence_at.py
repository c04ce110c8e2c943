"""Execution: the nominal time of an occurrence whose retry is pending; the due index
matches the claim's conditions.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22

A retry puts the job back to SCHEDULED at the retry's time (`next_run_at`); `occurrence_at`
keeps the time of the occurrence it retries, so that every attempt's execution has the same
`scheduled_for` and its targets the same idempotency key. Read only while `attempt > 1`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _due_index(predicate: str) -> None:
    op.drop_index("ix_jobs_due", table_name="jobs")
    op.create_index("ix_jobs_due", "jobs", ["next_run_at"], postgresql_where=sa.text(predicate))


def upgrade() -> None:
    op.add_column("jobs", sa.Column("occurrence_at", sa.TIMESTAMP(timezone=True), nullable=True))
    _due_index("status = 'SCHEDULED' AND deleted_at IS NULL")


def downgrade() -> None:
    _due_index("status = 'SCHEDULED'")
    op.drop_column("jobs", "occurrence_at")
