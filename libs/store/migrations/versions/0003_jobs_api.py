"""The jobs API: descriptions, labels, soft deletion, idempotency keys, dead-letter replay.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

- `jobs.description`, `jobs.labels` (a JSON object of strings, filtered by containment through
  a GIN index) and `jobs.deleted_at` (DELETE is soft: the job is cancelled and leaves every
  listing; its executions stay readable).
- The list indexes become keyset indexes over live jobs: `(owner_id, created_at, id)` and
  `(owner_id, next_run_at, id)`, partial on `deleted_at IS NULL`. `id` is in the key because a
  batch creates many jobs with one `created_at`.
- `idempotency_keys`: the `Idempotency-Key` of a job creation and the job it created. Its
  foreign key is deferred because the key is inserted before its job (a concurrent duplicate
  then waits on the key instead of inserting a job).
- `dead_letters.replayed_at`, and the owner index gains `id` for keyset pagination.
- A CHECK on `jobs.misfire_policy`: it is read back as an enumeration by two services.

Downgrading makes soft-deleted jobs visible again (as CANCELLED or finished jobs) and forgets
the idempotency keys.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.TIMESTAMP(timezone=True)
NOW = sa.text("now()")
JSONB = postgresql.JSONB()
LIVE = sa.text("deleted_at IS NULL")


def upgrade() -> None:
    op.add_column("jobs", sa.Column("description", sa.Text(), nullable=True))
    op.add_column(
        "jobs", sa.Column("labels", JSONB, server_default=sa.text("'{}'::jsonb"), nullable=False)
    )
    op.add_column("jobs", sa.Column("deleted_at", TZ, nullable=True))
    op.create_check_constraint(
        op.f("ck_jobs_labels_object"), "jobs", "jsonb_typeof(labels) = 'object'"
    )
    # Read back as `libs.scheduling.misfire.MisfirePolicy` by the job service and the scheduler: a
    # value outside it would fail every read of the job.
    op.create_check_constraint(
        op.f("ck_jobs_misfire_policy"),
        "jobs",
        "misfire_policy IN ('run_once', 'skip', 'run_all')",
    )
    op.drop_index(op.f("ix_jobs_owner_id_created_at"), table_name="jobs")
    op.create_index(
        op.f("ix_jobs_owner_id_created_at_id"),
        "jobs",
        ["owner_id", "created_at", "id"],
        postgresql_where=LIVE,
    )
    op.create_index(
        op.f("ix_jobs_owner_id_next_run_at_id"),
        "jobs",
        ["owner_id", "next_run_at", "id"],
        postgresql_where=LIVE,
    )
    op.create_index(
        op.f("ix_jobs_labels"),
        "jobs",
        ["labels"],
        postgresql_using="gin",
        postgresql_ops={"labels": "jsonb_path_ops"},
        postgresql_where=LIVE,
    )

    op.create_table(
        "idempotency_keys",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.Text(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", TZ, server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("owner_id", "key", name=op.f("pk_idempotency_keys")),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_idempotency_keys_job_id_jobs"),
            ondelete="CASCADE",
            deferrable=True,
            initially="DEFERRED",
        ),
        sa.CheckConstraint(
            "char_length(key) BETWEEN 1 AND 200", name=op.f("ck_idempotency_keys_key_length")
        ),
    )
    op.create_index(op.f("ix_idempotency_keys_job_id"), "idempotency_keys", ["job_id"])

    op.add_column("dead_letters", sa.Column("replayed_at", TZ, nullable=True))
    op.drop_index(op.f("ix_dead_letters_owner_id_created_at"), table_name="dead_letters")
    op.create_index(
        op.f("ix_dead_letters_owner_id_created_at_id"),
        "dead_letters",
        ["owner_id", "created_at", "id"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_dead_letters_owner_id_created_at_id"), table_name="dead_letters")
    op.create_index(
        op.f("ix_dead_letters_owner_id_created_at"), "dead_letters", ["owner_id", "created_at"]
    )
    op.drop_column("dead_letters", "replayed_at")

    op.drop_table("idempotency_keys")

    op.drop_index(op.f("ix_jobs_labels"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_owner_id_next_run_at_id"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_owner_id_created_at_id"), table_name="jobs")
    op.create_index(op.f("ix_jobs_owner_id_created_at"), "jobs", ["owner_id", "created_at"])
    op.drop_constraint(op.f("ck_jobs_misfire_policy"), "jobs", type_="check")
    op.drop_constraint(op.f("ck_jobs_labels_object"), "jobs", type_="check")
    op.drop_column("jobs", "deleted_at")
    op.drop_column("jobs", "labels")
    op.drop_column("jobs", "description")
