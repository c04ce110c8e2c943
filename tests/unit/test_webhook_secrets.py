"""Webhook secrets without a database: the secrets `libs.security.webhook_secrets` generates, and
the receiver's verification that docs/webhooks.md shows (run here, so the page stays true)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from libs.security import webhook_secrets, webhooks
from libs.store import models

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
# The Standard Webhooks specification's example.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_a_generated_secret_is_whsec_and_32_random_bytes_in_base64():
    generated = [webhook_secrets.generate() for _ in range(100)]

    for secret in generated:
        assert re.fullmatch(models.WEBHOOK_SECRET_PATTERN, secret)
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        assert len(key) == webhooks.SECRET_BYTES == 32
    assert len(set(generated)) == len(generated)


def test_a_secret_view_keeps_the_secret_out_of_its_repr():
    view = webhook_secrets.SecretView(
        secret=SPEC_SECRET,
        previous_valid_until=None,
        created_at=datetime(2030, 1, 1, tzinfo=UTC),
        rotated_at=None,
    )

    assert "MfKQ9r8" not in repr(view)
    assert view.secret == SPEC_SECRET


# --- The verification the documentation shows ------------------------------------------------


@pytest.fixture(scope="module")
def doc() -> SimpleNamespace:
    """The names the page's `verify.py` block defines."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    [source] = [block for block in blocks if block.startswith("# verify.py")]
    names: dict[str, object] = {"__name__": "verify"}
    exec(compile(source, str(DOC), "exec"), names)  # noqa: S102 (our own documentation)
    return SimpleNamespace(**names)


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(signature: str, msg_id: str = SPEC_ID, timestamp: int = SPEC_TIMESTAMP) -> dict:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def test_the_documented_verification_accepts_the_specifications_example(doc):
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE

    doc.verify([SPEC_SECRET], headers(SPEC_SIGNATURE), SPEC_BODY, now=SPEC_TIMESTAMP)


def test_the_documented_verification_accepts_either_signature_during_a_rotation(doc):
    old, new = webhook_secrets.generate(), webhook_secrets.generate()
    both = " ".join(sign(s, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) for s in (new, old))

    for known in ([old], [new], [new, old]):
        doc.verify(known, headers(both), SPEC_BODY, now=SPEC_TIMESTAMP)
    with pytest.raises(doc.InvalidSignature):
        doc.verify([webhook_secrets.generate()], headers(both), SPEC_BODY, now=SPEC_TIMESTAMP)


@pytest.mark.parametrize(
    ("case", "request_headers", "body", "now"),
    [
        ("body changed", headers(SPEC_SIGNATURE), b'{"test": 2432232315}', SPEC_TIMESTAMP),
        ("id changed", headers(SPEC_SIGNATURE, msg_id="msg_other"), SPEC_BODY, SPEC_TIMESTAMP),
        ("too old", headers(SPEC_SIGNATURE), SPEC_BODY, SPEC_TIMESTAMP + 301),
        ("too new", headers(SPEC_SIGNATURE), SPEC_BODY, SPEC_TIMESTAMP - 301),
        ("other version", headers("v1a," + SPEC_SIGNATURE[3:]), SPEC_BODY, SPEC_TIMESTAMP),
        ("no signature", {"webhook-id": SPEC_ID, "webhook-timestamp": "1"}, SPEC_BODY, 1),
        ("timestamp not integer", headers(SPEC_SIGNATURE) | {"webhook-timestamp": "1e9"}, b"", 0),
        ("non-ASCII signature", headers("v1,é"), SPEC_BODY, SPEC_TIMESTAMP),
    ],
)
def test_the_documented_verification_refuses(doc, case, request_headers, body, now):
    with pytest.raises(doc.InvalidSignature):
        doc.verify([SPEC_SECRET], request_headers, body, now=now)
