"""Opaque credentials: refresh tokens and service-account client secrets.

They are random (256 bits), so a plain SHA-256 digest is enough to store them: unlike a
password, there is no small space to search, and a fast digest keeps every refresh or
client-credentials login cheap. Only the digest is stored; the value is shown once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_BYTES = 32


def new() -> str:
    """A fresh credential: 43 URL-safe characters."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def digest(value: str) -> str:
    """What is stored for `value` (hex SHA-256)."""
    return hashlib.sha256(value.encode()).hexdigest()


def matches(value: str, stored_digest: str) -> bool:
    """Whether `value` is the credential whose digest is `stored_digest`, in constant time."""
    return hmac.compare_digest(digest(value), stored_digest)
