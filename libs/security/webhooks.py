"""Standard Webhooks signatures (https://www.standardwebhooks.com/): pure functions, no I/O.

A request carries three headers: `webhook-id` (a message id, stable across retries of one
message), `webhook-timestamp` (integer Unix seconds) and `webhook-signature`, a space-separated
list of `v1,<base64 HMAC-SHA256>` entries. Each entry signs `f"{id}.{timestamp}.".encode() +
body` with the key that a secret (`whsec_` + base64) decodes to.

    value = webhooks.sign(secrets, msg_id, timestamp, body)      # sender
    webhooks.verify(secret, request_headers, body, now=now)      # receiver

A sender holding several secrets (the new one and, during a rotation, the previous one) signs
with each, so a receiver that knows either of them accepts the message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets as random_secrets
from collections.abc import Mapping, Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
SECRET_BYTES = 32  # of randomness in a secret we generate; the spec asks for 24 to 64
SIGNATURE_VERSION = "v1"  # HMAC-SHA256, the only symmetric scheme of the spec
DEFAULT_TOLERANCE_S = 300  # how far a receiver accepts the timestamp from its own clock

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"

# Integer seconds, as the spec writes them; no sign, no fraction, no exponent.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class InvalidSignature(ValueError):
    """A message fails verification: a header is missing or malformed, its timestamp is
    outside the tolerance, or no signature matches the secret."""


def generate_secret() -> str:
    """A new secret: `whsec_` and the base64 of `SECRET_BYTES` random bytes."""
    return SECRET_PREFIX + base64.b64encode(random_secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    """The HMAC key a secret stands for; `whsec_` is optional, base64 padding too (secrets
    issued by other implementations are often unpadded)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret must be base64 after its whsec_ prefix") from None
    if not key:
        raise ValueError("a webhook secret must not be empty")
    return key


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    # Bytes, not text: the body is signed exactly as it travels, whatever its encoding.
    content = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, content, hashlib.sha256).digest()


def sign(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one `v1,<base64>` entry per secret, in order."""
    if not secrets:
        raise ValueError("signing needs at least one secret")
    digests = (_digest(_key(secret), msg_id, timestamp, body) for secret in secrets)
    return " ".join(f"{SIGNATURE_VERSION},{base64.b64encode(d).decode()}" for d in digests)


def headers(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of a message."""
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secrets, msg_id, timestamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: int,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> None:
    """Return if `body` with `headers` (names in any case) was signed with `secret` at a time
    within `tolerance_s` of `now` (Unix seconds); raise `InvalidSignature` otherwise."""
    lowered = {name.lower(): value for name, value in headers.items()}
    found = {}
    for name in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER):
        if not lowered.get(name):
            raise InvalidSignature(f"the {name} header is missing")
        found[name] = lowered[name]

    if not _TIMESTAMP.fullmatch(found[TIMESTAMP_HEADER]):
        raise InvalidSignature(f"the {TIMESTAMP_HEADER} header is not integer seconds")
    timestamp = int(found[TIMESTAMP_HEADER])
    # A bounded window is what makes a captured message useless for replay later on.
    if timestamp < now - tolerance_s:
        raise InvalidSignature("the message timestamp is too old")
    if timestamp > now + tolerance_s:
        raise InvalidSignature("the message timestamp is too new")

    expected = _digest(_key(secret), found[ID_HEADER], timestamp, body)
    for entry in found[SIGNATURE_HEADER].split(" "):
        version, _, encoded = entry.partition(",")
        if version != SIGNATURE_VERSION:
            continue  # other schemes (v1a, future versions) are not ours to check
        try:
            candidate = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            continue
        # Constant time: a timing difference would reveal how much of a forgery is right.
        if hmac.compare_digest(expected, candidate):
            return
    raise InvalidSignature("no signature matches the secret")
