"""Server-side sessions of the console, in PostgreSQL (`repository`, table `console_sessions`).

The browser's cookie holds a random 32-byte secret (base64url) and nothing else. The row is
keyed by the secret's SHA-256 and holds the account's tokens sealed with AES-GCM under a key
derived from the secret (HKDF-SHA256): the database, a dump of it or a log of its statements
never holds a usable token, and a cookie is useless once its row is gone.

The access token is renewed with the refresh token only under `SELECT ... FOR UPDATE` of the
row (`renew`): the auth service rotates refresh tokens and revokes the whole family when one
is spent twice, so two requests of one browser, on any console process, must not both renew.
The second finds the tokens the first stored and uses them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from fastapi import Request, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from console_service import errors, repository, security
from console_service.settings import Settings
from libs.infra import db, log
from libs.security import scopes
from libs.store.models import ConsoleSession
from scheduler_client import AsyncClient, Tokens
from scheduler_client import errors as api_errors
from scheduler_client.auth import Credentials

COOKIE = "console_session"
PRE_SESSION_COOKIE = "console_csrf"  # the sign-in form's double-submitted CSRF token
SECURE_PREFIX = "__Host-"  # Secure, Path=/, no Domain: only this origin can set or read it
SECRET_BYTES = 32
NONCE_BYTES = 12
_HKDF_INFO = b"scheduler-console session tokens v1"
_SECRET_TEXT = re.compile(r"^[A-Za-z0-9_-]{43}$")  # base64url of 32 bytes, unpadded


def cookie_name(settings: Settings, name: str) -> str:
    return SECURE_PREFIX + name if settings.secure_cookies else name


def set_cookie(response: Response, settings: Settings, name: str, value: str) -> None:
    """A session cookie (no Max-Age: gone with the browser) that scripts cannot read."""
    response.set_cookie(
        cookie_name(settings, name),
        value,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )


def delete_cookie(response: Response, settings: Settings, name: str) -> None:
    response.delete_cookie(
        cookie_name(settings, name),
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )


# --- the secret and the sealed tokens ---------------------------------------------------------


def new_secret() -> str:
    """A cookie's secret: 32 random bytes, base64url without padding (43 characters)."""
    return secrets.token_urlsafe(SECRET_BYTES)


def parse_secret(cookie: str | None) -> bytes | None:
    """The 32 bytes of a cookie's secret, or None for anything else."""
    if cookie is None or not _SECRET_TEXT.fullmatch(cookie):
        return None
    return base64.urlsafe_b64decode(cookie + "=")


def key_hash(secret: bytes) -> bytes:
    """What the row is keyed by: SHA-256 of the secret (256 random bits need no slow hash)."""
    return hashlib.sha256(secret).digest()


def _cipher(secret: bytes) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(secret)
    return AESGCM(key)


def seal(secret: bytes, tokens: Tokens) -> bytes:
    """`tokens` encrypted under the secret's key, bound to the row (its key hash as AAD)."""
    plain = json.dumps(
        {
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
            "expires_at": tokens.expires_at.isoformat() if tokens.expires_at else None,
            "scope": tokens.scope,
        }
    ).encode()
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + _cipher(secret).encrypt(nonce, plain, key_hash(secret))


def unseal(secret: bytes, sealed: bytes) -> Tokens:
    """The tokens `seal` sealed; `SessionEnded` if they do not open with this secret."""
    try:
        plain = _cipher(secret).decrypt(
            sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], key_hash(secret)
        )
    except InvalidTag as exc:
        raise errors.SessionEnded("sealed tokens do not open") from exc
    fields = json.loads(plain)
    expires_at = fields["expires_at"]
    return Tokens(
        access_token=fields["access_token"],
        refresh_token=fields["refresh_token"],
        expires_at=datetime.fromisoformat(expires_at) if expires_at else None,
        scope=fields["scope"],
    )


# --- the signed-in browser ------------------------------------------------------------------


@dataclass
class SignedIn:
    """The session of the request: who is signed in, with which scopes, and their tokens."""

    secret: bytes = field(repr=False)
    account_id: uuid.UUID
    email: str
    role: str
    scopes: frozenset[str]
    csrf_token: str = field(repr=False)
    tokens: Tokens = field(repr=False)

    @property
    def key_hash(self) -> bytes:
        return key_hash(self.secret)

    def can(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def is_admin(self) -> bool:
        return scopes.USERS_ADMIN in self.scopes


def _signed_in(secret: bytes, row: ConsoleSession) -> SignedIn:
    return SignedIn(
        secret=secret,
        account_id=row.account_id,
        email=row.email,
        role=row.role,
        scopes=frozenset(row.scopes),
        csrf_token=row.csrf_token,
        tokens=unseal(secret, row.sealed_tokens),
    )


def _factory(request: Request) -> async_sessionmaker[AsyncSession]:
    return request.app.state.sessions


async def current(request: Request) -> SignedIn:
    """The request's session (a FastAPI dependency): `SignInRequired` without one, and, for
    a POST, `CsrfRefused` unless it carries the session's CSRF token from this origin."""
    settings: Settings = request.app.state.settings
    secret = parse_secret(request.cookies.get(cookie_name(settings, COOKIE)))
    if secret is None:
        raise errors.SignInRequired
    async with db.unit_of_work(_factory(request)) as session:
        row = await repository.touch_session(
            session, key_hash(secret), idle_s=settings.session_idle_timeout_s
        )
        if row is None:
            await repository.delete_session(session, key_hash(secret))  # ended, if it was one
    if row is None:
        raise errors.SignInRequired
    signed_in = _signed_in(secret, row)
    await security.check_state_change(request, signed_in.csrf_token)
    request.state.signed_in = signed_in
    return signed_in


async def start(
    request: Request, response: Response, client: AsyncClient, tokens: Tokens
) -> SignedIn:
    """A new session for the account `client` has just logged in as (its tokens `tokens`):
    stored, its cookie set on `response`, ended sessions purged on the way."""
    settings: Settings = request.app.state.settings
    me = await client.users.me()
    secret = new_secret()
    raw = parse_secret(secret)
    assert raw is not None  # new_secret makes what parse_secret reads
    signed_in = SignedIn(
        secret=raw,
        account_id=me.id,
        email=me.email,
        role=str(me.role),
        scopes=frozenset((tokens.scope or "").split()),
        csrf_token=security.new_token(),
        tokens=tokens,
    )
    async with db.unit_of_work(_factory(request)) as session:
        purged = await repository.purge_ended_sessions(
            session, idle_s=settings.session_idle_timeout_s
        )
        await repository.create_session(
            session,
            key_hash=signed_in.key_hash,
            account_id=me.id,
            email=me.email,
            role=signed_in.role,
            scopes=sorted(signed_in.scopes),
            csrf_token=signed_in.csrf_token,
            sealed_tokens=seal(raw, tokens),
            lifetime_s=settings.session_lifetime_s,
        )
    log.get().info("console_session_started", account_id=str(me.id), purged=purged)
    set_cookie(response, settings, COOKIE, secret)
    delete_cookie(response, settings, PRE_SESSION_COOKIE)
    return signed_in


async def end(request: Request, signed_in: SignedIn) -> None:
    """Delete the session (its cookie is cleared by the answer that follows)."""
    async with db.unit_of_work(_factory(request)) as session:
        await repository.delete_session(session, signed_in.key_hash)
    log.get().info("console_session_ended", account_id=str(signed_in.account_id))


async def sign_out(request: Request, signed_in: SignedIn) -> None:
    """Revoke the session's refresh token (its whole family, at the auth service) and delete
    the session. The row is deleted even when the auth service cannot be reached: the token
    then lives on only sealed in a row that no longer exists, until it expires."""
    async with db.unit_of_work(_factory(request)) as session:
        row = await repository.lock_session(session, signed_in.key_hash)
        if row is not None:
            stored = unseal(signed_in.secret, row.sealed_tokens)
            try:
                async with api_client(request, stored) as client:
                    await client.logout()
            except (api_errors.ApiError, api_errors.ConnectionFailed) as exc:
                log.get().warning("console_revoke_failed", reason=type(exc).__name__)
            await repository.delete_session(session, signed_in.key_hash)
    log.get().info("console_signed_out", account_id=str(signed_in.account_id))


async def renew(request: Request, signed_in: SignedIn, refused: Tokens) -> Tokens:
    """Fresh tokens for the session, whose `refused` access token expired or was refused.

    Under the row's lock: if another request renewed them meanwhile, theirs are used;
    otherwise the refresh token is spent once and the rotated tokens stored. `SessionEnded`
    (the row deleted) when the auth service refuses the refresh token.
    """
    refused_grant = False
    async with db.unit_of_work(_factory(request)) as session:
        row = await repository.lock_session(session, signed_in.key_hash)
        if row is None:
            raise errors.SessionEnded("session deleted meanwhile")
        stored = unseal(signed_in.secret, row.sealed_tokens)
        if stored.access_token != refused.access_token or stored.refresh_token is None:
            fresh = stored  # renewed by another request meanwhile (or nothing to renew with)
        else:
            try:
                async with api_client(request, stored) as client:
                    fresh = await client.login()  # the refresh grant: `stored` has a refresh token
            except (api_errors.BadRequest, api_errors.Unauthorized):
                await repository.delete_session(session, signed_in.key_hash)
                refused_grant = True
            else:
                await repository.store_tokens(
                    session, signed_in.key_hash, seal(signed_in.secret, fresh)
                )
                log.get().info("console_tokens_renewed", account_id=str(signed_in.account_id))
    if refused_grant:
        raise errors.SessionEnded("refresh token refused")
    signed_in.tokens = fresh
    return fresh


def api_client(request: Request, auth: Credentials) -> AsyncClient:
    """A client of the platform's APIs, on the console's shared connection pool."""
    return AsyncClient(request.app.state.endpoints, auth=auth, http_client=request.app.state.http)
