"""Standard Webhooks signatures: the reference test vector, verification failures by cause,
rotation (several signatures), and round-trip properties."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.security import webhooks

# The vector of the Standard Webhooks reference libraries (libraries/python/tests and the other
# languages' tests in github.com/standard-webhooks/standard-webhooks).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

NOW = 1_700_000_000
BODY = b'{"job":"nightly"}'


def _headers(secrets=(VECTOR_SECRET,), *, msg_id="msg_1", timestamp=NOW, body=BODY):
    return webhooks.headers(list(secrets), msg_id, timestamp, body)


def test_the_reference_vector_signs_as_the_spec_says():
    signature = webhooks.sign([VECTOR_SECRET], VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)
    assert signature == VECTOR_SIGNATURE


def test_the_reference_vector_verifies():
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    webhooks.verify(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP)


def test_the_signature_is_hmac_sha256_over_id_timestamp_and_body():
    # Computed independently of the module: key = base64 after the prefix.
    key = base64.b64decode(VECTOR_SECRET.removeprefix("whsec_"))
    digest = hmac.new(key, b"msg_1.%d.%s" % (NOW, BODY), hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(digest).decode()
    assert webhooks.sign([VECTOR_SECRET], "msg_1", NOW, BODY) == expected


def test_headers_carry_id_timestamp_and_signature():
    headers = _headers()
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == str(NOW)
    assert headers["webhook-signature"] == webhooks.sign([VECTOR_SECRET], "msg_1", NOW, BODY)


def test_the_prefix_and_the_padding_of_a_secret_are_optional():
    bare = VECTOR_SECRET.removeprefix("whsec_")
    assert webhooks.sign([bare], "m", NOW, BODY) == webhooks.sign([VECTOR_SECRET], "m", NOW, BODY)
    unpadded = "whsec_" + base64.b64encode(b"k" * 32).decode().rstrip("=")
    padded = "whsec_" + base64.b64encode(b"k" * 32).decode()
    assert webhooks.sign([unpadded], "m", NOW, BODY) == webhooks.sign([padded], "m", NOW, BODY)


def test_generated_secrets_are_32_random_bytes_after_the_prefix():
    first, second = webhooks.generate_secret(), webhooks.generate_secret()
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    assert first != second


@pytest.mark.parametrize("secret", ["whsec_", "whsec_not base64!", ""])
def test_an_unusable_secret_is_refused(secret):
    with pytest.raises(ValueError, match="secret"):
        webhooks.sign([secret], "m", NOW, BODY)


def test_signing_needs_a_secret():
    with pytest.raises(ValueError, match="at least one secret"):
        webhooks.sign([], "m", NOW, BODY)


def test_during_a_rotation_either_secret_verifies():
    new, old = webhooks.generate_secret(), webhooks.generate_secret()
    headers = _headers([new, old])
    assert len(headers["webhook-signature"].split(" ")) == 2
    webhooks.verify(new, headers, BODY, now=NOW)
    webhooks.verify(old, headers, BODY, now=NOW)
    with pytest.raises(webhooks.InvalidSignature, match="no signature matches"):
        webhooks.verify(webhooks.generate_secret(), headers, BODY, now=NOW)


def test_header_names_are_case_insensitive():
    headers = {name.upper(): value for name, value in _headers().items()}
    webhooks.verify(VECTOR_SECRET, headers, BODY, now=NOW)


def test_unknown_versions_and_garbage_entries_are_skipped():
    headers = _headers()
    valid = headers["webhook-signature"]
    headers["webhook-signature"] = f"v1a,abc v2,{valid[3:]} v1,!!!notbase64 nocomma {valid}"
    webhooks.verify(VECTOR_SECRET, headers, BODY, now=NOW)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"webhook-id": None}, "webhook-id header is missing"),
        ({"webhook-timestamp": None}, "webhook-timestamp header is missing"),
        ({"webhook-signature": None}, "webhook-signature header is missing"),
        ({"webhook-signature": ""}, "webhook-signature header is missing"),
        ({"webhook-timestamp": "hello"}, "not integer seconds"),
        ({"webhook-timestamp": f"{NOW}.5"}, "not integer seconds"),
        ({"webhook-timestamp": f"-{NOW}"}, "not integer seconds"),
        ({"webhook-timestamp": f"{NOW - 301}"}, "too old"),
        ({"webhook-timestamp": f"{NOW + 301}"}, "too new"),
        ({"webhook-id": "msg_2"}, "no signature matches"),  # the id is signed
        ({"webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="}, "no signature"),
        ({"webhook-signature": "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}, "no signature"),
    ],
)
def test_verification_fails_with_its_cause(change, message):
    headers = _headers()
    for name, value in change.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    with pytest.raises(webhooks.InvalidSignature, match=message):
        webhooks.verify(VECTOR_SECRET, headers, BODY, now=NOW)


@pytest.mark.parametrize("skew_s", [-300, 0, 300])
def test_timestamps_within_the_tolerance_pass(skew_s):
    headers = _headers(timestamp=NOW + skew_s)
    webhooks.verify(VECTOR_SECRET, headers, BODY, now=NOW)


def test_the_tolerance_is_configurable():
    headers = _headers(timestamp=NOW - 10)
    with pytest.raises(webhooks.InvalidSignature, match="too old"):
        webhooks.verify(VECTOR_SECRET, headers, BODY, now=NOW, tolerance_s=5)


# --- properties --------------------------------------------------------------------------------

keys = st.binary(min_size=24, max_size=64).map(lambda b: "whsec_" + base64.b64encode(b).decode())
ids = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=64)
timestamps = st.integers(min_value=0, max_value=10**11)
bodies = st.binary(max_size=2048)


@given(secret=keys, msg_id=ids, timestamp=timestamps, body=bodies)
def test_what_is_signed_verifies(secret, msg_id, timestamp, body):
    headers = webhooks.headers([secret], msg_id, timestamp, body)
    webhooks.verify(secret, headers, body, now=timestamp)


@given(secret=keys, body=bodies, index=st.integers(min_value=0), flip=st.integers(1, 255))
def test_any_changed_byte_of_the_body_fails(secret, body, index, flip):
    headers = webhooks.headers([secret], "msg_1", NOW, body)
    if body:
        position = index % len(body)
        changed = body[:position] + bytes([body[position] ^ flip]) + body[position + 1 :]
    else:
        changed = bytes([flip])
    with pytest.raises(webhooks.InvalidSignature):
        webhooks.verify(secret, headers, changed, now=NOW)


@given(secrets=st.lists(keys, min_size=1, max_size=3, unique=True), other=keys, body=bodies)
def test_each_signing_secret_verifies_and_no_other_does(secrets, other, body):
    headers = webhooks.headers(secrets, "msg_1", NOW, body)
    for secret in secrets:
        webhooks.verify(secret, headers, body, now=NOW)
    if other not in secrets:
        with pytest.raises(webhooks.InvalidSignature):
            webhooks.verify(other, headers, body, now=NOW)


@given(secret=keys, skew_s=st.integers(min_value=-(10**6), max_value=10**6))
def test_the_timestamp_is_accepted_exactly_within_the_tolerance(secret, skew_s):
    headers = webhooks.headers([secret], "msg_1", NOW + skew_s, BODY)
    if abs(skew_s) <= webhooks.DEFAULT_TOLERANCE_S:
        webhooks.verify(secret, headers, BODY, now=NOW)
    else:
        with pytest.raises(webhooks.InvalidSignature, match=r"too (old|new)"):
            webhooks.verify(secret, headers, BODY, now=NOW)
