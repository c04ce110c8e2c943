"""What the token and revocation endpoints decide: who may have a token, with which scopes,
and what happens to refresh tokens.

Units of work: each block `async with db.unit_of_work(...)` below is one transaction, committed
when it ends. A login uses two, so that no connection is held while a password is verified
(tens of milliseconds of argon2 in a thread): one reads, the other records the outcome. A
refusal that must leave a trace (a failed login counted, a reused refresh token's family
revoked) is decided inside its block and raised only after the block has committed.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pwdlib.exceptions
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth_service import errors, keys, repository, schemas, throttle
from auth_service.settings import Settings
from libs.infra import db, log
from libs.infra.web import Check
from libs.security import emails, opaque, passwords, scopes, tokens
from libs.store import models

JTI_BYTES = 16


@dataclass(frozen=True)
class Identity:
    """What the endpoints work with, built once per app in its lifespan."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    keys: keys.KeyRing
    hasher: passwords.Hasher


@asynccontextmanager
async def identity_resource(
    app: FastAPI, settings: Settings, configured: keys.ConfiguredKeys | None
) -> AsyncIterator[dict[str, Check]]:
    """`app.state.identity`, on the sessions that `libs.infra.resources.database` put there."""
    key_ring = keys.KeyRing(settings, app.state.sessions, configured)
    await key_ring.start()
    app.state.identity = Identity(
        settings=settings,
        sessions=app.state.sessions,
        keys=key_ring,
        hasher=passwords.Hasher(
            max_concurrent=settings.max_concurrent_hashes,
            max_waiting=settings.max_waiting_hashes,
        ),
    )
    yield {}


@dataclass(frozen=True)
class Holder:
    """The account tokens are issued to, and its token generation as read for the issue."""

    subject: uuid.UUID
    kind: tokens.PrincipalKind
    generation: int


@dataclass(frozen=True)
class Issued:
    access_token: str
    expires_in: int
    scope: str
    refresh_token: str | None = None


def access_claims(
    settings: Settings,
    *,
    subject: uuid.UUID,
    kind: tokens.PrincipalKind,
    granted: frozenset[str],
    generation: int,
    now: int,
    jti: str,
) -> dict[str, Any]:
    """The claims of an access token issued at `now` (seconds since the epoch) to an account
    whose token generation is `generation`."""
    return {
        "iss": settings.auth_issuer,
        "aud": settings.auth_audience,
        "sub": str(subject),
        "iat": now,
        "nbf": now,
        "exp": now + settings.access_token_ttl_s,
        "jti": jti,
        "scope": scopes.render(granted),
        tokens.PRINCIPAL_CLAIM: kind,
        tokens.GENERATION_CLAIM: generation,
    }


def _mint(
    identity: Identity,
    signer: keys.Signer,
    holder: Holder,
    granted: frozenset[str],
    refresh_token: str | None = None,
) -> Issued:
    claims = access_claims(
        identity.settings,
        subject=holder.subject,
        kind=holder.kind,
        granted=granted,
        generation=holder.generation,
        now=int(time.time()),
        jti=secrets.token_urlsafe(JTI_BYTES),
    )
    return Issued(
        access_token=signer.sign(claims),
        expires_in=identity.settings.access_token_ttl_s,
        scope=claims["scope"],
        refresh_token=refresh_token,
    )


def _requested(scope: str | None) -> frozenset[str] | None:
    try:
        return scopes.parse(scope)
    except scopes.InvalidScope as exc:
        raise errors.InvalidScope(str(exc)) from None


def _narrow(requested: frozenset[str] | None, allowed: frozenset[str]) -> frozenset[str]:
    try:
        return scopes.narrow(requested, allowed)
    except scopes.InvalidScope as exc:
        raise errors.InvalidScope(str(exc)) from None


async def grant(identity: Identity, request: schemas.Grant, address: str | None) -> Issued:
    """Answer a token request (one of the three grants)."""
    match request:
        case schemas.PasswordGrant():
            return await password_login(identity, request, address)
        case schemas.ClientCredentialsGrant():
            return await client_login(identity, request)
        case schemas.RefreshGrant():
            return await refresh(identity, request)


# --- Password grant ---------------------------------------------------------------------------

BAD_CREDENTIALS = "the email or password is not correct"


async def password_login(
    identity: Identity, request: schemas.PasswordGrant, address: str | None
) -> Issued:
    requested = _requested(request.scope)
    email = emails.normalise(request.username)
    login_keys = throttle.LoginKeys.of(email, address)
    async with db.unit_of_work(identity.sessions) as session:
        retry_after = await throttle.retry_after_s(session, login_keys)
        user = None if retry_after else await repository.user_by_email(session, email)
    if retry_after:
        log.get().info("login_locked", address=address)
        raise errors.LoginLocked(retry_after)

    verified, new_hash = await _verify(identity.hasher, request.password, user)
    # A disabled account is answered and counted as a wrong password, so that neither the
    # answer nor the throttle confirms a password to whoever tries it.
    disabled = user is not None and user.disabled_at is not None
    if user is None or not verified or disabled:
        async with db.unit_of_work(identity.sessions) as session:
            locked = await throttle.record_failure(session, identity.settings, login_keys)
        log.get().info(
            "login_failed", address=address, locked=locked, account_disabled=verified and disabled
        )
        raise errors.InvalidGrant(BAD_CREDENTIALS)
    holder = Holder(user.id, "user", user.token_generation)
    granted = _narrow(requested, scopes.for_role(user.role))

    signer = await identity.keys.signer()
    refresh_token = opaque.new()
    async with db.unit_of_work(identity.sessions) as session:
        await throttle.record_success(session, login_keys)
        if new_hash is not None:
            await repository.replace_password_hash(
                session, user.id, old=user.password_hash, new=new_hash
            )
        await repository.insert_refresh_token(
            session,
            token_hash=opaque.digest(refresh_token),
            family_id=uuid.uuid4(),
            user_id=user.id,
            service_account_id=None,
            scopes=granted,
            token_generation=holder.generation,
            ttl_s=identity.settings.refresh_token_ttl_s,
        )
    log.get().info("login_succeeded", user_id=str(user.id), rehashed=new_hash is not None)
    return _mint(identity, signer, holder, granted, refresh_token)


async def _verify(
    hasher: passwords.Hasher, password: str, user: models.User | None
) -> tuple[bool, str | None]:
    """Whether `password` is the user's, and a rehash when the stored parameters are old.

    For no user, one verification is still spent, so the answer takes as long.
    """
    try:
        if user is None:
            await hasher.verify_nothing(password)
            return False, None
        return await hasher.verify_and_update(password, user.password_hash)
    except passwords.HasherBusy:
        raise errors.LoginsBusy() from None
    except pwdlib.exceptions.UnknownHashError:
        log.get().error("password_hash_unrecognised", user_id=str(user.id) if user else None)
        return False, None


# --- Client-credentials grant -----------------------------------------------------------------


async def client_login(identity: Identity, request: schemas.ClientCredentialsGrant) -> Issued:
    requested = _requested(request.scope)
    async with db.unit_of_work(identity.sessions) as session:
        account = await repository.service_account_by_client_id(session, request.client_id)
    if account is None or not opaque.matches(request.client_secret, account.secret_hash):
        log.get().info("client_login_failed")
        raise errors.InvalidClient()
    if account.disabled_at is not None:
        raise errors.InvalidClient("the service account is disabled")
    granted = _narrow(requested, frozenset(account.scopes))
    signer = await identity.keys.signer()
    log.get().info("client_login_succeeded", service_account_id=str(account.id))
    holder = Holder(account.id, "service_account", account.token_generation)
    return _mint(identity, signer, holder, granted)


# --- Refresh-token grant ----------------------------------------------------------------------


async def refresh(identity: Identity, request: schemas.RefreshGrant) -> Issued:
    """Rotate the refresh token: a new one in the same family, the presented one spent."""
    requested = _requested(request.scope)
    signer = await identity.keys.signer()
    async with db.unit_of_work(identity.sessions) as session:
        outcome = await _rotate(session, identity.settings, request.refresh_token, requested)
    if isinstance(outcome, errors.InvalidGrant):
        raise outcome  # after the commit: a family revoked for reuse stays revoked
    return _mint(identity, signer, outcome.holder, outcome.granted, outcome.refresh_token)


@dataclass(frozen=True)
class _Rotated:
    holder: Holder
    granted: frozenset[str]
    refresh_token: str


async def _rotate(
    session: AsyncSession,
    settings: Settings,
    presented: str,
    requested: frozenset[str] | None,
) -> _Rotated | errors.InvalidGrant:
    """The rotation, or why there is none. The presented token's row stays locked until the
    transaction ends, so of two requests with one token, the second waits, then finds it spent.
    """
    found = await repository.lock_refresh_token(session, opaque.digest(presented))
    if found is None:
        return errors.InvalidGrant("the refresh token is not valid")
    token, now = found
    refusal = await _refusal(session, token, now)
    if refusal is not None:
        return refusal
    found_holder = await _holder(session, token)
    if found_holder is None:
        return errors.InvalidGrant("the account is disabled, gone, or changed since the login")
    holder, allowed = found_holder
    if requested is not None and not requested <= frozenset(token.scopes):
        raise errors.InvalidScope("a refresh may only narrow the scope granted at login")
    granted = _narrow(requested, frozenset(token.scopes) & allowed)
    new_token = opaque.new()
    new_id = await repository.insert_refresh_token(
        session,
        token_hash=opaque.digest(new_token),
        family_id=token.family_id,
        user_id=token.user_id,
        service_account_id=token.service_account_id,
        scopes=token.scopes,  # RFC 6749 section 6: the new token keeps the original scope
        token_generation=holder.generation,
        ttl_s=settings.refresh_token_ttl_s,
    )
    await repository.mark_refresh_token_rotated(session, token.id, replaced_by=new_id)
    log.get().info("refresh_token_rotated", family_id=str(token.family_id))
    return _Rotated(holder, granted, new_token)


async def _refusal(
    session: AsyncSession, token: models.RefreshToken, now: datetime
) -> errors.InvalidGrant | None:
    if token.revoked_at is not None:
        return errors.InvalidGrant("the refresh token has been revoked")
    if token.rotated_at is not None:
        # Spent already: either its holder raced itself or someone else holds a copy. Nobody
        # can tell which, so the whole family goes (the refusal is committed with it).
        revoked = await repository.revoke_refresh_family(session, token.family_id)
        log.get().warning("refresh_token_reused", family_id=str(token.family_id), revoked=revoked)
        return errors.InvalidGrant("the refresh token was already used; its family is revoked")
    if token.expires_at <= now:
        return errors.InvalidGrant("the refresh token has expired")
    return None


async def _holder(
    session: AsyncSession, token: models.RefreshToken
) -> tuple[Holder, frozenset[str]] | None:
    """Whom a refresh token speaks for and the scopes they may hold now; None when the account
    is gone, disabled, or changed (password, role, secret) since the token was issued: its
    token generation is no longer the token's."""
    account: models.User | models.ServiceAccount | None
    if token.user_id is not None:
        account = await repository.user_by_id(session, token.user_id)
        kind: tokens.PrincipalKind = "user"
    else:
        assert token.service_account_id is not None
        account = await repository.service_account_by_id(session, token.service_account_id)
        kind = "service_account"
    if (
        account is None
        or account.disabled_at is not None
        or account.token_generation != token.token_generation
    ):
        return None
    if isinstance(account, models.User):
        allowed = scopes.for_role(account.role)
    else:
        allowed = frozenset(account.scopes)
    return Holder(account.id, kind, account.token_generation), allowed


# --- Revocation -------------------------------------------------------------------------------


async def revoke(identity: Identity, request: schemas.RevocationRequest) -> None:
    """Revoke the refresh token's whole family (a logout). Unknown tokens, access tokens
    included, are not an error (RFC 7009 section 2.2)."""
    async with db.unit_of_work(identity.sessions) as session:
        family_id = await repository.revoke_refresh_family_of(session, opaque.digest(request.token))
    if family_id is not None:
        log.get().info("refresh_family_revoked", family_id=str(family_id))
