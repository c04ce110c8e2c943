"""Execution: `lease_expires_at`, the running lease, written by the start instead of the job's.

Revision ID: 0013
Revises: 0012
Create Date: 2027-02-02

An executor's start wrote the job's row to extend its lease to the job's timeout (plus the
margin), an update that changes an indexed column and so wrote a new entry in each of the job's
six indexes. The start now writes the running lease on the execution it starts, an update that
changes no indexed column (heap-only), and lease recovery reads a started execution's lease
there. The job's own lease stays the dispatch lease. Executions started before the upgrade have
none: recovery reads their job's lease, which their start extended.

Downgrading copies each running lease to its job first, where the previous versions read it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("executions", sa.Column("lease_expires_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.execute(
        "UPDATE jobs AS j SET lease_expires_at = greatest(j.lease_expires_at, e.lease_expires_at) "
        "FROM executions AS e "
        "WHERE e.job_id = j.id AND e.lease_version = j.lease_version "
        "AND j.status = 'RUNNING' AND e.lease_expires_at IS NOT NULL"
    )
    op.drop_column("executions", "lease_expires_at")
