"""Webhook signing secrets: one per owner, and the previous one during a rotation.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

`webhook_secrets` holds each owner's Standard Webhooks secret (`whsec_<base64 key>`), with
which the executor signs the owner's outbound `http` requests. A rotation keeps the old secret
as `previous_secret` until `previous_valid_until`: requests carry both signatures meanwhile.
Secrets are stored as they are (they are HMAC keys, and the owner reads them again).

Downgrading drops every secret: receivers must be configured with new ones after an upgrade.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.TIMESTAMP(timezone=True)
NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "webhook_secrets",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("previous_secret", sa.Text(), nullable=True),
        sa.Column("previous_valid_until", TZ, nullable=True),
        sa.Column("created_at", TZ, server_default=NOW, nullable=False),
        sa.Column("rotated_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("owner_id", name=op.f("pk_webhook_secrets")),
        sa.CheckConstraint(
            "secret ~ '^whsec_[A-Za-z0-9+/]+={0,2}$'", name=op.f("ck_webhook_secrets_secret_format")
        ),
        sa.CheckConstraint(
            "previous_secret ~ '^whsec_[A-Za-z0-9+/]+={0,2}$'",
            name=op.f("ck_webhook_secrets_previous_secret_format"),
        ),
        sa.CheckConstraint(
            "(previous_secret IS NULL) = (previous_valid_until IS NULL)",
            name=op.f("ck_webhook_secrets_previous_complete"),
        ),
        sa.CheckConstraint(
            "previous_secret IS NULL OR rotated_at IS NOT NULL",
            name=op.f("ck_webhook_secrets_previous_after_rotation"),
        ),
    )


def downgrade() -> None:
    op.drop_table("webhook_secrets")
