"""Execution: `occurrence_at` holds the nominal time of the occurrence in flight from its claim.

Revision ID: 0011
Revises: 0010
Create Date: 2027-01-15

A claim now stores in `occurrence_at` the nominal time of the occurrence it dispatches (a
retry keeps its occurrence's, a first attempt's is the time it was due), and lease recovery
reads it as it is. Jobs RUNNING at the upgrade were claimed before: theirs is computed by the
rule the claim applied then, from the row as it is.

Downgrading forgets it where the previous versions never read it (a first attempt).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "UPDATE jobs SET occurrence_at = CASE WHEN attempt > 1 "
        "THEN coalesce(occurrence_at, next_run_at) ELSE next_run_at END "
        "WHERE status = 'RUNNING'"
    )


def downgrade() -> None:
    op.execute("UPDATE jobs SET occurrence_at = NULL WHERE attempt = 1")
