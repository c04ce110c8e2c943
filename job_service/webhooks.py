"""Decisions about the caller's webhook signing secret: whose it is, and what is logged.

The secret is always the caller's own (the token's subject), whatever its scopes: an admin
sees and rotates only its own, as no one else's is ever shown. The queries are in
`libs.security.webhook_secrets`, shared with the executor that signs with them. Log lines name the
owner, never a secret.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from job_service import service
from libs.infra import log
from libs.security import webhook_secrets
from libs.security.tokens import Principal


async def show_secret(session: AsyncSession, principal: Principal) -> webhook_secrets.SecretView:
    """The caller's secret, created on first use."""
    owner = service.owner_id(principal)
    view = await webhook_secrets.show(session, owner)
    log.get().info("webhook_secret_shown", owner_id=str(owner))
    return view


async def rotate_secret(
    session: AsyncSession, principal: Principal, *, grace_s: int
) -> webhook_secrets.SecretView:
    """A new secret for the caller; the old one keeps signing for `grace_s` seconds."""
    owner = service.owner_id(principal)
    view = await webhook_secrets.rotate(session, owner, grace_s=grace_s)
    log.get().info("webhook_secret_rotated", owner_id=str(owner), grace_s=grace_s)
    return view
