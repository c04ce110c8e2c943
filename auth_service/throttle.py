"""Brute-force limits of the password grant, per account and per client address.

Failures are counted in `login_throttles` under two keys, `account:<normalised email>` and
`address:<client ip>`, in a fixed window (`login_window_s`). The failure that brings a key to
its limit (`account_max_failures`, `address_max_failures`) locks it for `login_lockout_s`:
while either key of a login is locked, the token endpoint answers 429 with `Retry-After`
before it looks at the password, so a correct password is refused too. An email that belongs
to no account is counted and locked exactly like one that does, so neither the answer nor its
timing says whether the account exists. A successful login clears the account's key only: one
valid account must not let an address wipe its own count.

Attempts refused because of a lock are not counted, so a lock ends when it says it ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from auth_service import repository
from auth_service.settings import Settings

UNKNOWN_ADDRESS = "unknown"  # an ASGI server that does not report the peer


@dataclass(frozen=True)
class LoginKeys:
    account: str
    address: str

    @classmethod
    def of(cls, email: str, address: str | None) -> LoginKeys:
        return cls(account=f"account:{email}", address=f"address:{address or UNKNOWN_ADDRESS}")


async def retry_after_s(session: AsyncSession, keys: LoginKeys) -> int | None:
    """Whole seconds until neither key is locked, or None when neither is locked now."""
    remaining = await repository.lockout_remaining(session, (keys.account, keys.address))
    if remaining is None:
        return None
    return max(1, math.ceil(remaining.total_seconds()))


async def record_failure(session: AsyncSession, settings: Settings, keys: LoginKeys) -> bool:
    """Count a failed login against both keys; whether either is now locked."""
    locked = False
    for key, limit in (
        (keys.account, settings.account_max_failures),
        (keys.address, settings.address_max_failures),
    ):
        locked_now = await repository.record_login_failure(
            session,
            key,
            window_s=settings.login_window_s,
            max_failures=limit,
            lockout_s=settings.login_lockout_s,
        )
        locked = locked or locked_now
    return locked


async def record_success(session: AsyncSession, keys: LoginKeys) -> None:
    await repository.clear_login_failures(session, keys.account)
