"""Brute-force limits of the password grant, per account and per client address.

Failures are counted in `login_throttles` under two keys, `account:<normalised email>` and
`address:<client ip>`, in a fixed window (`login_window_s`). The failure that brings a key to
its limit (`account_max_failures`, `address_max_failures`) locks it for `login_lockout_s`:
while either key of a login is locked, the token endpoint answers 429 with `Retry-After`
before it looks at the password, so a correct password is refused too. An email that belongs
to no account is counted and locked exactly like one that does, so neither the answer nor its
timing says whether the account exists. A successful login clears the account's key only: one
valid account must not let an address wipe its own count. An admin can clear an account's key
too (the user service's `:unlock`), which leaves the address keys as they are.

Attempts refused because of a lock are not counted, so a lock ends when it says it ends.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.settings import Settings
from libs.security import throttles


@dataclass(frozen=True)
class LoginKeys:
    account: str
    address: str

    @classmethod
    def of(cls, email: str, address: str | None) -> LoginKeys:
        return cls(
            account=throttles.account_key(email), address=throttles.address_key("address", address)
        )


async def retry_after_s(session: AsyncSession, keys: LoginKeys) -> int | None:
    """Whole seconds until neither key is locked, or None when neither is locked now."""
    return await throttles.retry_after_s(session, (keys.account, keys.address))


async def record_failure(session: AsyncSession, settings: Settings, keys: LoginKeys) -> bool:
    """Count a failed login against both keys; whether either is now locked."""
    locked = False
    for key, limit in (
        (keys.account, settings.account_max_failures),
        (keys.address, settings.address_max_failures),
    ):
        failures = await throttles.count(
            session,
            key,
            window_s=settings.login_window_s,
            limit=limit,
            lockout_s=settings.login_lockout_s,
        )
        locked = locked or failures >= limit
    return locked


async def record_success(session: AsyncSession, keys: LoginKeys) -> None:
    await throttles.clear(session, keys.account)
