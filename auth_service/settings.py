"""Settings of the auth service (documented in config/auth_service.properties)."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr, field_validator

from libs.infra import config

ENCRYPTION_KEY_BYTES = 32  # AES-256


class Settings(config.ApiSettings):
    service_name: ClassVar[str] = "auth_service"
    http_port: config.Port = 8002

    # Lifetimes of what the token endpoint issues.
    access_token_ttl_s: int = Field(default=900, ge=60, le=86_400)
    refresh_token_ttl_s: int = Field(default=30 * 86_400, ge=300, le=366 * 86_400)

    # Signing keys: from PEM files when set, otherwise generated and stored in the database.
    signing_key_file: Path | None = None
    previous_signing_key_file: Path | None = None
    # Base64 of 32 random bytes: encrypts stored private keys (AES-256-GCM).
    signing_key_encryption_key: SecretStr | None = None
    # How often, at most, a running copy re-reads which key is active (after a rotation).
    active_key_reload_s: float = Field(default=60.0, ge=0, le=3600)

    # Brute-force limits of the password grant.
    login_window_s: int = Field(default=900, ge=1, le=86_400)
    login_lockout_s: int = Field(default=900, ge=1, le=86_400)
    account_max_failures: int = Field(default=5, ge=1, le=1000)
    address_max_failures: int = Field(default=20, ge=1, le=100_000)

    # Argon2 verifications: at most this many at once (19 MiB each), this many queued.
    max_concurrent_hashes: int = Field(default=2, ge=1, le=64)
    max_waiting_hashes: int = Field(default=64, ge=0, le=10_000)

    @field_validator("signing_key_encryption_key")
    @classmethod
    def _thirty_two_bytes(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        try:
            raw = base64.b64decode(value.get_secret_value(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("must be base64 (of 32 random bytes)") from None
        if len(raw) != ENCRYPTION_KEY_BYTES:
            raise ValueError(f"must be the base64 of exactly {ENCRYPTION_KEY_BYTES} bytes")
        return value

    def encryption_key(self) -> bytes | None:
        """The raw key that encrypts stored private keys, if one is configured."""
        if self.signing_key_encryption_key is None:
            return None
        return base64.b64decode(self.signing_key_encryption_key.get_secret_value())
