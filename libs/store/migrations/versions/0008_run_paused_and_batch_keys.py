"""Jobs: a run requested while paused returns the job to PAUSED; batches take an idempotency key.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10

- `jobs.pause_after_run`: set when a person runs a PAUSED job now (`POST /v1/jobs/{id}:run`).
  The job is SCHEDULED, due at once, for that one occurrence; when the occurrence ends and the
  job would move on to its next one, it is PAUSED there instead. A CHECK keeps the flag on
  SCHEDULED and RUNNING jobs only, so no path that ends or pauses a job can leave it behind.
- `idempotency_keys` also records batch creations: `batch_results` holds what a batch answered,
  one entry per item in order (the id of the job it created, or the field errors it was refused
  with); `job_id` becomes NULL for such a key. Exactly one of the two is set.

Downgrading forgets the batches' keys and the flag (a job it was set on stays SCHEDULED or
RUNNING, and carries on with its schedule after the run).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "jobs",
        sa.Column("pause_after_run", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_jobs_pause_after_run_while_active"),
        "jobs",
        "NOT pause_after_run OR status IN ('SCHEDULED', 'RUNNING')",
    )
    op.add_column("idempotency_keys", sa.Column("batch_results", postgresql.JSONB(), nullable=True))
    op.alter_column("idempotency_keys", "job_id", existing_type=sa.Uuid(), nullable=True)
    op.create_check_constraint(
        op.f("ck_idempotency_keys_job_or_batch"),
        "idempotency_keys",
        "(job_id IS NULL) <> (batch_results IS NULL)",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_idempotency_keys_job_or_batch"), "idempotency_keys", type_="check")
    op.execute("DELETE FROM idempotency_keys WHERE job_id IS NULL")
    op.alter_column("idempotency_keys", "job_id", existing_type=sa.Uuid(), nullable=False)
    op.drop_column("idempotency_keys", "batch_results")
    op.drop_constraint(op.f("ck_jobs_pause_after_run_while_active"), "jobs", type_="check")
    op.drop_column("jobs", "pause_after_run")
