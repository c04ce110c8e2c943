"""Owners' webhook signing secrets (Standard Webhooks): every query of `webhook_secrets`.

The executor signs each outbound `http` request of a job with its owner's secrets
(`webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed with the
base64-decoded part after `whsec_`); the job service shows an owner its secret and rotates it.
An owner's secret is created the first time either of them asks for it. After a rotation the
previous secret signs too, as a second signature, until `previous_valid_until` by the database
clock, so that a receiver can switch to the new secret without refusing a request.

Nothing here commits: the caller's unit of work does. The functions expect PostgreSQL's
default isolation, READ COMMITTED (a row another transaction just created is read, not missed).
docs/webhooks.md describes the receiver's side.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, case, func, null, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from libs.security import webhooks
from libs.store import models

WebhookSecret = models.WebhookSecret


def generate() -> str:
    """A new secret (`libs.security.webhooks.generate_secret`)."""
    return webhooks.generate_secret()


@dataclass(frozen=True, slots=True)
class SecretView:
    """An owner's secret as the owner sees it.

    `previous_valid_until`: while the secret before the last rotation still signs (a second
    signature), until when; None when requests carry only `secret`'s signature.
    `rotated_at`: None until the first rotation.
    """

    secret: str = field(repr=False)  # kept out of log lines and tracebacks
    previous_valid_until: datetime | None
    created_at: datetime
    rotated_at: datetime | None


# Whether the previous secret still signs, by the database clock.
_PREVIOUS_SIGNS = WebhookSecret.previous_valid_until > func.now()
_SIGNING = (WebhookSecret.secret, case((_PREVIOUS_SIGNS, WebhookSecret.previous_secret)))
_VIEW = (
    WebhookSecret.secret,
    case((_PREVIOUS_SIGNS, WebhookSecret.previous_valid_until)),
    WebhookSecret.created_at,
    WebhookSecret.rotated_at,
)


async def _read_or_create(session: AsyncSession, owner_id: uuid.UUID, query: Select[Any]) -> Any:
    """The row `query` reads for the owner, after creating the owner's secret if it had none.

    Read first: the secret exists on every call but an owner's first. When two transactions
    create it at once, the second insert waits for the first to end and then does nothing, and
    the read that follows (a new snapshot) sees the first one's secret: both use that one.
    """
    query = query.where(WebhookSecret.owner_id == owner_id)
    row = (await session.execute(query)).one_or_none()
    if row is not None:
        return row
    # If this statement fails, its error (which may be logged) shows the generated secret as a
    # parameter; it was never stored, so it signs nothing.
    await session.execute(
        pg_insert(WebhookSecret)
        .values(owner_id=owner_id, secret=generate())
        .on_conflict_do_nothing(index_elements=[WebhookSecret.owner_id])
    )
    return (await session.execute(query)).one()


async def signing_secrets(session: AsyncSession, owner_id: uuid.UUID) -> list[str]:
    """The secrets to sign the owner's requests with: `[current]`, or `[current, previous]`
    while a rotation's grace lasts. Creates the owner's secret when it has none."""
    current, previous = await _read_or_create(session, owner_id, select(*_SIGNING))
    return [current] if previous is None else [current, previous]


async def show(session: AsyncSession, owner_id: uuid.UUID) -> SecretView:
    """The owner's secret; created when it has none."""
    return SecretView(*await _read_or_create(session, owner_id, select(*_VIEW)))


async def rotate(session: AsyncSession, owner_id: uuid.UUID, *, grace_s: float) -> SecretView:
    """Give the owner a new secret. The current one becomes the previous one and keeps signing
    for `grace_s` seconds more (0: it stops at once and is forgotten); an older previous secret
    is forgotten. An owner without a secret gets one, with no previous one."""
    if grace_s < 0:
        raise ValueError("the grace period must not be negative")
    keep = grace_s > 0
    insert = pg_insert(WebhookSecret).values(
        owner_id=owner_id, secret=generate(), rotated_at=func.now()
    )
    statement = insert.on_conflict_do_update(
        index_elements=[WebhookSecret.owner_id],
        set_={
            # On the right-hand side, columns are the row's values before the update.
            "secret": insert.excluded.secret,
            "previous_secret": WebhookSecret.secret if keep else null(),
            "previous_valid_until": (func.now() + timedelta(seconds=grace_s) if keep else null()),
            "rotated_at": func.now(),
        },
    ).returning(*_VIEW)
    return SecretView(*(await session.execute(statement)).one())
