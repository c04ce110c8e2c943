"""Initial schema: identity, jobs, executions, dead letters, nodes.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written by hand to match `libs.store.models` (a test compares the two). Every constraint and index
is named explicitly with `op.f()` so that the names do not depend on the naming convention in force
when a later migration runs. Values of enumerations are written out, not imported: a migration
keeps meaning what it meant when it was written.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.TIMESTAMP(timezone=True)
NOW = sa.text("now()")
TEXT_ARRAY = postgresql.ARRAY(sa.Text())
JSONB = postgresql.JSONB()


def _id() -> sa.Column:
    return sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False)


def _created_at() -> sa.Column:
    return sa.Column("created_at", TZ, server_default=NOW, nullable=False)


def _updated_at() -> sa.Column:
    return sa.Column("updated_at", TZ, server_default=NOW, nullable=False)


def upgrade() -> None:
    op.create_table(
        "users",
        _id(),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=True),
        sa.Column("role", sa.Text(), server_default=sa.text("'user'::text"), nullable=False),
        sa.Column("disabled_at", TZ, nullable=True),
        sa.Column("password_changed_at", TZ, server_default=NOW, nullable=False),
        sa.Column("failed_login_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("locked_until", TZ, nullable=True),
        _created_at(),
        _updated_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
        sa.CheckConstraint("email = lower(email)", name=op.f("ck_users_email_lower_case")),
        sa.CheckConstraint("role IN ('user', 'admin')", name=op.f("ck_users_role")),
        sa.CheckConstraint(
            "failed_login_count >= 0", name=op.f("ck_users_failed_login_count_non_negative")
        ),
    )

    op.create_table(
        "service_accounts",
        _id(),
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("secret_hash", sa.Text(), nullable=False),
        sa.Column("scopes", TEXT_ARRAY, server_default=sa.text("'{}'::text[]"), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("disabled_at", TZ, nullable=True),
        sa.Column("secret_rotated_at", TZ, nullable=True),
        _created_at(),
        _updated_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_accounts")),
        sa.UniqueConstraint("client_id", name=op.f("uq_service_accounts_client_id")),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_service_accounts_created_by_users"),
            ondelete="SET NULL",
        ),
    )
    op.create_index(op.f("ix_service_accounts_created_by"), "service_accounts", ["created_by"])

    op.create_table(
        "refresh_tokens",
        _id(),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("family_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("service_account_id", sa.Uuid(), nullable=True),
        sa.Column("scopes", TEXT_ARRAY, server_default=sa.text("'{}'::text[]"), nullable=False),
        sa.Column("issued_at", TZ, server_default=NOW, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("rotated_at", TZ, nullable=True),
        sa.Column("revoked_at", TZ, nullable=True),
        sa.Column("replaced_by", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_refresh_tokens_token_hash")),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_refresh_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["service_account_id"],
            ["service_accounts.id"],
            name=op.f("fk_refresh_tokens_service_account_id_service_accounts"),
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "num_nonnulls(user_id, service_account_id) = 1",
            name=op.f("ck_refresh_tokens_exactly_one_subject"),
        ),
        sa.CheckConstraint(
            "expires_at > issued_at", name=op.f("ck_refresh_tokens_expires_after_issue")
        ),
    )
    op.create_index(op.f("ix_refresh_tokens_family_id"), "refresh_tokens", ["family_id"])
    op.create_index(op.f("ix_refresh_tokens_user_id"), "refresh_tokens", ["user_id"])
    op.create_index(
        op.f("ix_refresh_tokens_service_account_id"), "refresh_tokens", ["service_account_id"]
    )
    op.create_index(op.f("ix_refresh_tokens_expires_at"), "refresh_tokens", ["expires_at"])

    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.Text(), nullable=False),
        sa.Column("algorithm", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("public_jwk", JSONB, nullable=False),
        sa.Column("private_key_pem", sa.Text(), nullable=True),
        _created_at(),
        sa.Column("activated_at", TZ, nullable=True),
        sa.Column("retired_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_signing_keys")),
        sa.CheckConstraint(
            "status IN ('active', 'previous', 'retired')", name=op.f("ck_signing_keys_status")
        ),
    )
    # At most one active key.
    op.create_index(
        op.f("ix_signing_keys_one_active"),
        "signing_keys",
        ["status"],
        unique=True,
        postgresql_where=sa.text("status = 'active'"),
    )

    op.create_table(
        "jobs",
        _id(),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column("schedule", JSONB, nullable=False),
        sa.Column("schedule_kind", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), server_default=sa.text("'UTC'::text"), nullable=False),
        sa.Column("retry_policy", JSONB, server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("misfire_policy", sa.Text(), nullable=False),
        sa.Column("misfire_grace_s", sa.Integer(), nullable=False),
        sa.Column("timeout_s", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'SCHEDULED'::text"), nullable=False),
        sa.Column("next_run_at", TZ, nullable=True),
        sa.Column("last_run_at", TZ, nullable=True),
        sa.Column("last_finished_at", TZ, nullable=True),
        sa.Column("run_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("attempt", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("lease_version", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("lease_expires_at", TZ, nullable=True),
        sa.Column("leased_by", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        _created_at(),
        _updated_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.CheckConstraint(
            "status IN ('SCHEDULED', 'RUNNING', 'PAUSED', 'COMPLETED', 'FAILED', 'CANCELLED')",
            name=op.f("ck_jobs_status"),
        ),
        sa.CheckConstraint(
            "schedule_kind IN ('once', 'cron', 'fixed_rate', 'fixed_delay', 'calendar')",
            name=op.f("ck_jobs_schedule_kind"),
        ),
        sa.CheckConstraint(
            "status <> 'SCHEDULED' OR next_run_at IS NOT NULL",
            name=op.f("ck_jobs_scheduled_has_next_run"),
        ),
        sa.CheckConstraint(
            "status <> 'RUNNING' OR lease_expires_at IS NOT NULL",
            name=op.f("ck_jobs_running_has_lease"),
        ),
        sa.CheckConstraint("run_count >= 0", name=op.f("ck_jobs_run_count_non_negative")),
        sa.CheckConstraint("attempt >= 1", name=op.f("ck_jobs_attempt_positive")),
        sa.CheckConstraint("lease_version >= 0", name=op.f("ck_jobs_lease_version_non_negative")),
        sa.CheckConstraint("version >= 1", name=op.f("ck_jobs_version_positive")),
        sa.CheckConstraint("timeout_s > 0", name=op.f("ck_jobs_timeout_positive")),
        sa.CheckConstraint("misfire_grace_s >= 0", name=op.f("ck_jobs_misfire_grace_non_negative")),
    )
    # The scheduler's due-jobs scan and lease recovery: partial, so they hold only live rows.
    op.create_index(
        op.f("ix_jobs_due"),
        "jobs",
        ["next_run_at"],
        postgresql_where=sa.text("status = 'SCHEDULED'"),
    )
    op.create_index(
        op.f("ix_jobs_lease_expiry"),
        "jobs",
        ["lease_expires_at"],
        postgresql_where=sa.text("status = 'RUNNING'"),
    )
    op.create_index(op.f("ix_jobs_owner_id_created_at"), "jobs", ["owner_id", "created_at"])

    op.create_table(
        "executions",
        _id(),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("scheduled_for", TZ, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("lease_version", sa.BigInteger(), nullable=False),
        sa.Column(
            "status", sa.Text(), server_default=sa.text("'DISPATCHED'::text"), nullable=False
        ),
        sa.Column("worker", sa.Text(), nullable=True),
        sa.Column("dispatched_at", TZ, server_default=NOW, nullable=False),
        sa.Column("started_at", TZ, nullable=True),
        sa.Column("finished_at", TZ, nullable=True),
        sa.Column("error_kind", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_executions")),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_executions_job_id_jobs"), ondelete="CASCADE"
        ),
        # "Each occurrence is dispatched once" rests on this key.
        sa.UniqueConstraint(
            "job_id", "scheduled_for", "attempt", name=op.f("uq_executions_occurrence")
        ),
        sa.CheckConstraint(
            "status IN ('DISPATCHED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'LOST')",
            name=op.f("ck_executions_status"),
        ),
        sa.CheckConstraint("attempt >= 1", name=op.f("ck_executions_attempt_positive")),
        sa.CheckConstraint(
            "lease_version >= 0", name=op.f("ck_executions_lease_version_non_negative")
        ),
    )
    op.create_index(op.f("ix_executions_job_id_created_at"), "executions", ["job_id", "created_at"])

    op.create_table(
        "dead_letters",
        _id(),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("execution_id", sa.Uuid(), nullable=True),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_dead_letters_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.id"],
            name=op.f("fk_dead_letters_execution_id_executions"),
            ondelete="SET NULL",
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_dead_letters_attempts_non_negative")),
    )
    op.create_index(op.f("ix_dead_letters_job_id"), "dead_letters", ["job_id"])
    op.create_index(op.f("ix_dead_letters_execution_id"), "dead_letters", ["execution_id"])
    op.create_index(
        op.f("ix_dead_letters_owner_id_created_at"), "dead_letters", ["owner_id", "created_at"]
    )

    op.create_table(
        "nodes",
        sa.Column("node_id", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("hostname", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("last_heartbeat_at", TZ, nullable=False),
        sa.Column("metadata", JSONB, server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.PrimaryKeyConstraint("node_id", name=op.f("pk_nodes")),
    )
    op.create_index(op.f("ix_nodes_last_heartbeat_at"), "nodes", ["last_heartbeat_at"])


def downgrade() -> None:
    # Dropping a table drops its indexes and constraints; dependants go first.
    op.drop_table("nodes")
    op.drop_table("dead_letters")
    op.drop_table("executions")
    op.drop_table("jobs")
    op.drop_table("signing_keys")
    op.drop_table("refresh_tokens")
    op.drop_table("service_accounts")
    op.drop_table("users")
