"""Login throttles replace the per-user failure counter.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Failed logins are counted per email as typed and per client address, in `login_throttles`,
so that an unknown email is throttled exactly like a known one. The per-user columns that
could only count known accounts are dropped.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.TIMESTAMP(timezone=True)
NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "login_throttles",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("window_started_at", TZ, server_default=NOW, nullable=False),
        sa.Column("locked_until", TZ, nullable=True),
        sa.Column("updated_at", TZ, server_default=NOW, nullable=False),
        sa.CheckConstraint("failures >= 0", name=op.f("ck_login_throttles_failures_non_negative")),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttles")),
    )
    op.create_index(
        op.f("ix_login_throttles_updated_at"), "login_throttles", ["updated_at"], unique=False
    )
    op.drop_constraint(op.f("ck_users_failed_login_count_non_negative"), "users", type_="check")
    op.drop_column("users", "locked_until")
    op.drop_column("users", "failed_login_count")


def downgrade() -> None:
    op.add_column(
        "users",
        sa.Column("failed_login_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column("users", sa.Column("locked_until", TZ, nullable=True))
    op.create_check_constraint(
        op.f("ck_users_failed_login_count_non_negative"), "users", "failed_login_count >= 0"
    )
    op.drop_index(op.f("ix_login_throttles_updated_at"), table_name="login_throttles")
    op.drop_table("login_throttles")
