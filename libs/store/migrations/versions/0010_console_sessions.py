"""Console sessions: a browser's sign-in to the web console, its tokens sealed.

Revision ID: 0010
Revises: 0009
Create Date: 2027-01-08

`console_sessions` is keyed by the SHA-256 of the secret in the browser's cookie and holds the
account's access and refresh tokens encrypted (AES-GCM) under a key derived from that secret,
which the database never sees. Only the console service reads or writes it.

Downgrading drops every session: everyone signed in to the console signs in again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.TIMESTAMP(timezone=True)
NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("key_hash", sa.LargeBinary(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column(
            "scopes", sa.ARRAY(sa.Text()), server_default=sa.text("'{}'::text[]"), nullable=False
        ),
        sa.Column("csrf_token", sa.Text(), nullable=False),
        sa.Column("sealed_tokens", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TZ, server_default=NOW, nullable=False),
        sa.Column("last_seen_at", TZ, server_default=NOW, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("key_hash", name=op.f("pk_console_sessions")),
        sa.CheckConstraint(
            "octet_length(key_hash) = 32", name=op.f("ck_console_sessions_key_hash_sha256")
        ),
        sa.CheckConstraint(
            "expires_at > created_at", name=op.f("ck_console_sessions_expires_after_creation")
        ),
    )
    op.create_index(op.f("ix_console_sessions_last_seen_at"), "console_sessions", ["last_seen_at"])
    op.create_index(op.f("ix_console_sessions_expires_at"), "console_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_table("console_sessions")
