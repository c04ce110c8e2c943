"""Token generations: access and refresh tokens end when their account's standing changes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08

Every user and service account gets a `token_generation`, raised in the transaction of each
change that must end the account's earlier tokens (disabling, enabling, a role change, a
password change, a secret rotation). Access tokens carry the generation they were issued
under (claim `generation`), refresh tokens keep it in their row, and both are honoured only
while it is still their account's (ADR 0010). Existing rows start at 0, which is also what a
token without the claim stands for, so no session ends at the upgrade.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("users", "service_accounts", "refresh_tokens")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(
            table,
            sa.Column(
                "token_generation", sa.Integer(), server_default=sa.text("0"), nullable=False
            ),
        )
        op.create_check_constraint(
            op.f(f"ck_{table}_token_generation_non_negative"), table, "token_generation >= 0"
        )


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_constraint(op.f(f"ck_{table}_token_generation_non_negative"), table, type_="check")
        op.drop_column(table, "token_generation")
