"""Signing keys: where the private key comes from, how it is stored, published and rotated.

Two ways to hold the keys:

- **Generated** (no `signing_key_file`): the first copy to start with no active key generates
  one, under a PostgreSQL advisory lock so concurrent starts create one key, not several (the
  partial unique index `ix_signing_keys_one_active` is the last line of defence). The private
  key is stored as PKCS#8 PEM, sealed with AES-256-GCM when `signing_key_encryption_key` is
  set (`v1:<base64 of nonce + ciphertext>`, the kid as associated data, so a sealed key cannot
  be passed off as another). `schedctl rotate-signing-key` rotates: a new key becomes active,
  the active one previous, the previous one retired.
- **Configured** (`signing_key_file`, optionally `previous_signing_key_file`): the keys are
  read from PEM files at start and only their public JWKs are stored, so the JWKS still lists
  them. Rotation is replacing the files and restarting.

The JWKS publishes the active and previous keys. A running copy re-reads which key is active
at most every `active_key_reload_s`, and starts signing with a newly activated key only once it
has been published for `activation_delay_s`, so that every verifier, which refetches the JWKS
at most every `auth_jwks_refresh_min_interval_s`, can know it by then. The kid of every key is
its RFC 7638 thumbprint: the same key has the same kid in every copy and after every restart.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth_service import repository
from auth_service.errors import RotationTooSoon, SigningKeyUnavailable
from auth_service.settings import Settings
from libs.infra import config, db, log
from libs.scheduling.states import SigningKeyStatus
from libs.security import tokens
from libs.store import models

RSA_KEY_BITS = 3072
SEALED_PREFIX = "v1:"
NONCE_BYTES = 12  # AES-GCM's standard nonce
THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Signer:
    """A private key that signs access tokens, and what the JWKS says of it."""

    kid: str
    algorithm: str
    private_key: PrivateKey = field(repr=False)

    @classmethod
    def of(cls, private_key: PrivateKey, algorithm: str) -> Signer:
        return cls(thumbprint(_bare_jwk(private_key, algorithm)), algorithm, private_key)

    def public_jwk(self) -> dict[str, Any]:
        jwk = _bare_jwk(self.private_key, self.algorithm)
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def sign(self, claims: dict[str, Any]) -> str:
        headers = {"kid": self.kid, "typ": tokens.ACCESS_TOKEN_TYPE}
        return jwt.encode(claims, self.private_key, algorithm=self.algorithm, headers=headers)

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _bare_jwk(private_key: PrivateKey, algorithm: str) -> dict[str, Any]:
    if algorithm == "ES256":
        return jwt.algorithms.ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    return jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)


def thumbprint(jwk: dict[str, Any]) -> str:
    """The RFC 7638 thumbprint of a public JWK (SHA-256, base64url without padding)."""
    members = {name: jwk[name] for name in THUMBPRINT_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def generate(algorithm: str) -> Signer:
    if algorithm == "ES256":
        return Signer.of(ec.generate_private_key(ec.SECP256R1()), algorithm)
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    return Signer.of(private_key, algorithm)


def from_pem(pem: bytes, algorithm: str) -> Signer:
    """A signer of `algorithm` from an unencrypted PEM private key; ValueError saying what is
    wrong with it (never its content)."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError("not an unencrypted PEM private key") from exc
    if algorithm == "ES256":
        if not (isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"):
            raise ValueError("ES256 needs an EC private key on the P-256 curve")
    elif not (isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048):
        raise ValueError("RS256 needs an RSA private key of at least 2048 bits")
    return Signer.of(key, algorithm)


# --- Private keys at rest ---------------------------------------------------------------------


def seal(pem: bytes, kid: str, key: bytes | None) -> str:
    """What is stored for a private key: sealed when an encryption key is configured."""
    if key is None:
        return pem.decode()
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, pem, kid.encode())
    return SEALED_PREFIX + base64.b64encode(nonce + sealed).decode()


def unseal(stored: str, kid: str, key: bytes | None) -> bytes:
    if not stored.startswith(SEALED_PREFIX):
        return stored.encode()
    if key is None:
        raise SigningKeyUnavailable(
            f"the private key of {kid} is stored encrypted and signing_key_encryption_key "
            "is not set"
        )
    raw = base64.b64decode(stored[len(SEALED_PREFIX) :])
    try:
        return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], kid.encode())
    except InvalidTag:
        raise SigningKeyUnavailable(
            f"the private key of {kid} cannot be decrypted with signing_key_encryption_key"
        ) from None


def open_stored(row: models.SigningKey, settings: Settings) -> Signer:
    """The signer of a stored key, refusing one this service cannot or must not sign with."""
    if row.algorithm != settings.auth_algorithm:
        raise SigningKeyUnavailable(
            f"the active signing key {row.kid} is {row.algorithm} but auth_algorithm is "
            f"{settings.auth_algorithm}: run `schedctl rotate-signing-key`"
        )
    if row.private_key_pem is None:
        raise SigningKeyUnavailable(
            f"the private key of {row.kid} is not stored (it came from signing_key_file): "
            "configure that file, or run `schedctl rotate-signing-key`"
        )
    pem = unseal(row.private_key_pem, row.kid, settings.encryption_key())
    signer = from_pem(pem, row.algorithm)
    if signer.kid != row.kid:
        raise SigningKeyUnavailable(f"the stored private key of {row.kid} is not that key")
    return signer


# --- Configuration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfiguredKeys:
    """Keys read from the files the settings name."""

    active: Signer
    previous: Signer | None


def check_storage(settings: Settings) -> None:
    """Refuse, in production, to store private keys unencrypted."""
    if (
        settings.environment == "production"
        and settings.signing_key_file is None
        and settings.signing_key_encryption_key is None
    ):
        raise config.ConfigError(
            "in production the private signing key is never stored unencrypted: set "
            "'signing_key_encryption_key' (base64 of 32 random bytes; signing.key.encryption.key "
            "in a properties file or the environment variable SIGNING_KEY_ENCRYPTION_KEY), or "
            "'signing_key_file' (a PEM private key this service reads at start)"
        )


def load_configured(settings: Settings) -> ConfiguredKeys | None:
    """The keys of `signing_key_file` and `previous_signing_key_file`, None when unset.

    Raises `ConfigError` naming the setting and file when one cannot be used.
    """
    check_storage(settings)
    if settings.signing_key_file is None:
        if settings.previous_signing_key_file is not None:
            raise config.ConfigError(
                "'previous_signing_key_file' is set but 'signing_key_file' is not"
            )
        return None
    active = _read_key_file("signing_key_file", settings.signing_key_file, settings)
    previous = None
    if settings.previous_signing_key_file is not None:
        previous = _read_key_file(
            "previous_signing_key_file", settings.previous_signing_key_file, settings
        )
    return ConfiguredKeys(active, previous)


def _read_key_file(setting: str, path: Path, settings: Settings) -> Signer:
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise config.ConfigError(
            f"'{setting}': {path}: cannot read ({exc.strerror or type(exc).__name__})"
        ) from None
    try:
        return from_pem(pem, settings.auth_algorithm)
    except ValueError as exc:
        raise config.ConfigError(f"'{setting}': {path}: {exc}") from None


def activation_delay_s(settings: Settings) -> float:
    """How long a new active key is published before copies sign with it: a verifier refetches
    at most every refresh interval, and an HTTP cache may hold the JWKS as long again."""
    return 2 * settings.auth_jwks_refresh_min_interval_s


def retire_after_s(settings: Settings) -> float:
    """How long after a key stopped being active the last token it signed may still verify."""
    return (
        activation_delay_s(settings)
        + settings.active_key_reload_s
        + settings.access_token_ttl_s
        + settings.auth_leeway_s
    )


# --- The keys of a running service ------------------------------------------------------------


class KeyRing:
    """The key this copy signs with, kept in step with the database."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        configured: ConfiguredKeys | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._settings = settings
        self._sessions = sessions
        self._configured = configured
        self._clock = clock
        self._lock = asyncio.Lock()
        self._current: Signer | None = None
        self._checked_at = 0.0

    async def start(self) -> None:
        """Make sure an active key exists (generating or recording it) and load it."""
        async with db.unit_of_work(self._sessions) as session:
            await repository.lock_signing_keys(session)
            if self._configured is not None:
                self._current = await _record_configured(session, self._configured)
            else:
                self._current = await self._ensure_generated(session)
        self._checked_at = self._clock()

    async def _ensure_generated(self, session: AsyncSession) -> Signer:
        row = await repository.active_signing_key(session)
        if row is not None:
            return open_stored(row, self._settings)
        signer = generate(self._settings.auth_algorithm)
        await _store_active(session, signer, self._settings)
        log.get().info("signing_key_generated", kid=signer.kid, algorithm=signer.algorithm)
        return signer

    async def signer(self) -> Signer:
        """The key to sign with now; re-reads the active key when the last look is stale."""
        if self._current is None:
            raise RuntimeError("KeyRing.start() has not run")
        if self._configured is None and self._clock() - self._checked_at >= (
            self._settings.active_key_reload_s
        ):
            async with self._lock:
                if self._clock() - self._checked_at >= self._settings.active_key_reload_s:
                    await self._reload()
                    self._checked_at = self._clock()
        return self._current

    async def _reload(self) -> None:
        assert self._current is not None
        try:
            async with db.unit_of_work(self._sessions) as session:
                row = await repository.active_signing_key(session)
                if row is None or row.kid == self._current.kid:
                    return
                now = await repository.database_now(session)
                published_s = (now - (row.activated_at or now)).total_seconds()
                current_status = await repository.signing_key_status(session, self._current.kid)
            # Keep signing with the old key while the new one may still be unknown to a
            # verifier, unless the old key is no longer published at all.
            if (
                published_s < activation_delay_s(self._settings)
                and current_status == SigningKeyStatus.PREVIOUS
            ):
                return
            self._current = open_stored(row, self._settings)
        except (SQLAlchemyError, OSError, SigningKeyUnavailable, ValueError) as exc:
            # Keep the key in hand; the next look may succeed.
            log.get().warning("signing_key_reload_failed", error=type(exc).__name__)
            return
        log.get().info("signing_key_activated", kid=self._current.kid)

    async def published(self) -> list[dict[str, Any]]:
        """The public JWKs the JWKS endpoint serves."""
        async with db.unit_of_work(self._sessions) as session:
            return await repository.published_jwks(session)


async def _store_active(session: AsyncSession, signer: Signer, settings: Settings) -> None:
    await repository.insert_active_signing_key(
        session,
        kid=signer.kid,
        algorithm=signer.algorithm,
        public_jwk=signer.public_jwk(),
        private_key_pem=seal(signer.private_pem(), signer.kid, settings.encryption_key()),
    )


async def _record_configured(session: AsyncSession, keys: ConfiguredKeys) -> Signer:
    """Publish the configured keys; a new active file key rotates as the command would."""
    row = await repository.active_signing_key(session)
    if row is None or row.kid != keys.active.kid:
        await repository.retire_previous_signing_keys(session)
        await repository.demote_active_signing_key(session)
        await repository.insert_active_signing_key(
            session,
            kid=keys.active.kid,
            algorithm=keys.active.algorithm,
            public_jwk=keys.active.public_jwk(),
            private_key_pem=None,
        )
        log.get().info("signing_key_configured", kid=keys.active.kid)
    if keys.previous is not None and keys.previous.kid != keys.active.kid:
        await repository.publish_previous_signing_key(
            session,
            kid=keys.previous.kid,
            algorithm=keys.previous.algorithm,
            public_jwk=keys.previous.public_jwk(),
        )
    return keys.active


# --- Rotation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rotation:
    active: str
    previous: str | None
    retired: list[str]


async def rotate(settings: Settings, *, force: bool = False) -> Rotation:
    """Generate a new active key; the active one becomes previous, the previous one retired.

    Raises `RotationTooSoon` when retiring the previous key could refuse tokens that have not
    expired yet, unless `force`. Uses a connection of its own (the command has no app).
    """
    check_storage(settings)
    if settings.signing_key_file is not None:
        raise SigningKeyUnavailable(
            "signing keys come from signing_key_file: rotate by putting the new key in that "
            "file and the old one in previous_signing_key_file, then restarting"
        )
    signer = generate(settings.auth_algorithm)
    engine = db.create_engine(settings.database_url.get_secret_value(), pool_size=1, max_overflow=0)
    try:
        async with db.unit_of_work(db.session_factory(engine)) as session:
            await repository.lock_signing_keys(session)
            active = await repository.active_signing_key(session)
            if not force and active is not None and active.activated_at is not None:
                if await repository.previous_key_exists(session):
                    now = await repository.database_now(session)
                    safe_at = active.activated_at + timedelta(seconds=retire_after_s(settings))
                    if now < safe_at:
                        raise RotationTooSoon(math.ceil((safe_at - now).total_seconds()))
            retired = await repository.retire_previous_signing_keys(session)
            previous = await repository.demote_active_signing_key(session)
            await _store_active(session, signer, settings)
    finally:
        await engine.dispose()
    log.get().info("signing_key_rotated", kid=signer.kid, previous=previous, retired=retired)
    return Rotation(active=signer.kid, previous=previous, retired=retired)
