"""The access-token verifier (`libs.security.tokens`) against every token it must refuse, and its
key cache.

Tokens are real: signed with the keys of `token_issuer`, whose JWKS is served over loopback HTTP
and fetched by a real `KeyCache`. Forged tokens are built by hand (`forge`) so that nothing in a
JWT library stands between the forgery and the verifier. Tests that rotate or withdraw keys use
an issuer of their own (`own_issuer`), never the session's.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx
import hypothesis
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from libs.security import opaque, tokens
from schedctl import embedded

LEEWAY_S = 30
BEYOND_LEEWAY_S = 120
WITHIN_LEEWAY_S = 10
JWKS_PATH = "/.well-known/jwks.json"


# --- forging tokens by hand -------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def segment(document: Any) -> str:
    return b64(json.dumps(document).encode())


def forge(header: Mapping[str, Any], payload: Mapping[str, Any], sign: Callable[[bytes], bytes]):
    """A compact JWS of `header` and `payload` with the signature `sign` makes of them."""
    signing_input = f"{segment(header)}.{segment(payload)}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


def es256(key: ec.EllipticCurvePrivateKey) -> Callable[[bytes], bytes]:
    algorithm = jwt.get_algorithm_by_name("ES256")
    return lambda data: algorithm.sign(data, key)


def claims(issuer: Any, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    body = {
        "iss": issuer.issuer,
        "aud": issuer.audience,
        "sub": "user-1",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "token-1",
        "scope": "jobs:read",
        "principal": "user",
    }
    body.update(overrides)
    return body


def header(issuer: Any, **overrides: Any) -> dict[str, Any]:
    return {"alg": "ES256", "typ": "at+jwt", "kid": issuer.kid, **overrides}


def signing_key(issuer: Any) -> ec.EllipticCurvePrivateKey:
    return issuer.keys[issuer.kid]


# --- fixtures ---------------------------------------------------------------------------------


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class CountingFetch:
    """Wraps a real JWKS fetch and counts the attempts, failed ones included."""

    def __init__(self, fetch: tokens.KeyFetcher):
        self.fetch = fetch
        self.calls = 0

    async def __call__(self) -> Mapping[str, Any]:
        self.calls += 1
        return await self.fetch()


def jwks_app(document: Callable[[], Mapping[str, Any]]) -> Starlette:
    async def jwks(_request: Request) -> JSONResponse:
        return JSONResponse(dict(document()))

    return Starlette(routes=[Route(JWKS_PATH, jwks)])


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


@pytest.fixture
def keys(http, token_issuer) -> tokens.KeyCache:
    fetch = tokens.http_jwks(http, token_issuer.url)
    return tokens.KeyCache(fetch, algorithm="ES256", refresh_min_interval_s=0)


def make_verifier(issuer: Any, keys: tokens.KeyCache) -> tokens.Verifier:
    return tokens.Verifier(
        issuer=issuer.issuer,
        audience=issuer.audience,
        algorithm="ES256",
        keys=keys,
        leeway_s=LEEWAY_S,
    )


@pytest.fixture
def verifier(token_issuer, keys) -> tokens.Verifier:
    return make_verifier(token_issuer, keys)


@pytest.fixture
async def own_issuer(token_issuer, serve_app) -> AsyncIterator[Any]:
    """An issuer of this test alone (rotate or withdraw its keys at will), its JWKS on loopback."""
    issuer = type(token_issuer)()
    async with serve_app(jwks_app(lambda: issuer.jwks)) as base_url:
        issuer.url = base_url + JWKS_PATH
        yield issuer


async def refused(verifier: tokens.Verifier, token: str) -> str:
    """The reason `verifier` gives for refusing `token` (fails the test if it accepts it)."""
    with pytest.raises(tokens.InvalidToken) as caught:
        await verifier.verify(token)
    return str(caught.value)


# --- accepted ---------------------------------------------------------------------------------


async def test_a_valid_token_gives_its_principal(token_issuer, verifier):
    exp = int(time.time()) + 600
    token = token_issuer.mint(
        "user-42", ["jobs:write", "jobs:read"], jti="jti-42", exp=exp, principal="user"
    )

    principal = await verifier.verify(token)

    assert principal == tokens.Principal(
        subject="user-42",
        kind="user",
        scopes=frozenset({"jobs:read", "jobs:write"}),
        token_id="jti-42",
        expires_at=exp,
    )
    assert principal.is_user


async def test_a_service_account_token_gives_a_service_account_principal(token_issuer, verifier):
    token = token_issuer.mint("sa-7", ["jobs:run"], principal="service_account")

    principal = await verifier.verify(token)

    assert (principal.subject, principal.kind, principal.scopes) == (
        "sa-7",
        "service_account",
        frozenset({"jobs:run"}),
    )
    assert not principal.is_user


async def test_a_token_carries_its_accounts_generation_and_none_stands_for_0(
    token_issuer, verifier
):
    with_one = await verifier.verify(token_issuer.mint("user-1", generation=7))
    without = await verifier.verify(token_issuer.mint("user-1"))

    assert (with_one.generation, without.generation) == (7, 0)


async def test_a_token_without_scope_has_no_scopes(token_issuer, verifier):
    principal = await verifier.verify(token_issuer.mint("user-1", drop=["scope"]))

    assert principal.scopes == frozenset()


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt"])
async def test_the_access_token_type_is_accepted_in_its_spellings(token_issuer, verifier, typ):
    principal = await verifier.verify(token_issuer.mint("user-1", headers={"typ": typ}))

    assert principal.subject == "user-1"


async def test_a_token_expired_by_less_than_the_leeway_is_accepted(token_issuer, verifier):
    now = int(time.time())
    token = token_issuer.mint("user-1", iat=now - 900, nbf=now - 900, exp=now - WITHIN_LEEWAY_S)

    assert (await verifier.verify(token)).subject == "user-1"


async def test_a_token_valid_from_within_the_leeway_is_accepted(token_issuer, verifier):
    now = int(time.time())
    token = token_issuer.mint("user-1", iat=now + WITHIN_LEEWAY_S, nbf=now + WITHIN_LEEWAY_S)

    assert (await verifier.verify(token)).subject == "user-1"


async def test_an_audience_list_holding_ours_is_accepted(token_issuer, verifier):
    token = token_issuer.mint("user-1", aud=["another-api", token_issuer.audience])

    assert (await verifier.verify(token)).subject == "user-1"


# --- refused: algorithm -----------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
async def test_an_unsigned_token_built_by_hand_is_refused(token_issuer, verifier, alg):
    token = forge(header(token_issuer, alg=alg), claims(token_issuer), lambda _data: b"")

    assert token.endswith(".")
    assert "algorithm" in await refused(verifier, token)


async def test_an_unsigned_token_from_pyjwt_is_refused(token_issuer, verifier):
    token = jwt.encode(
        claims(token_issuer),
        None,
        algorithm="none",
        headers={"kid": token_issuer.kid, "typ": "at+jwt"},
    )

    assert "algorithm" in await refused(verifier, token)


def public_pem(issuer: Any) -> bytes:
    return (
        signing_key(issuer)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def published_jwk(issuer: Any) -> bytes:
    (jwk,) = [key for key in issuer.jwks["keys"] if key["kid"] == issuer.kid]
    return json.dumps(jwk).encode()


@pytest.mark.parametrize("secret", [public_pem, published_jwk], ids=["pem", "jwk-json"])
async def test_hs256_with_the_public_key_as_secret_is_refused(token_issuer, verifier, secret):
    key = secret(token_issuer)
    token = forge(
        header(token_issuer, alg="HS256"),
        claims(token_issuer, scope="users:admin"),
        lambda data: hmac.new(key, data, hashlib.sha256).digest(),
    )

    assert "algorithm" in await refused(verifier, token)


async def test_an_rs256_token_is_refused_when_es256_is_configured(token_issuer, verifier):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(
        claims(token_issuer),
        rsa_key,
        algorithm="RS256",
        headers={"kid": token_issuer.kid, "typ": "at+jwt"},
    )

    assert "algorithm" in await refused(verifier, token)


def test_a_verifier_cannot_be_configured_with_a_symmetric_or_no_algorithm(keys):
    for algorithm in ("HS256", "none"):
        with pytest.raises(ValueError, match="ES256"):
            tokens.Verifier(issuer="i", audience="a", algorithm=algorithm, keys=keys)


# --- refused: time ----------------------------------------------------------------------------


async def test_a_token_expired_beyond_the_leeway_is_refused(token_issuer, verifier):
    now = int(time.time())
    token = token_issuer.mint("user-1", iat=now - 900, nbf=now - 900, exp=now - BEYOND_LEEWAY_S)

    assert "expired" in await refused(verifier, token)


async def test_a_token_not_valid_before_a_future_time_is_refused(token_issuer, verifier):
    token = token_issuer.mint("user-1", nbf=int(time.time()) + BEYOND_LEEWAY_S)

    assert "not valid yet" in await refused(verifier, token)


async def test_a_token_issued_in_the_future_is_refused(token_issuer, verifier):
    token = token_issuer.mint("user-1", iat=int(time.time()) + BEYOND_LEEWAY_S)

    assert "not valid yet" in await refused(verifier, token)


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("value", ["soon", None, [1]], ids=["text", "null", "list"])
async def test_a_time_claim_that_is_not_a_number_is_refused(token_issuer, verifier, claim, value):
    await refused(verifier, token_issuer.mint("user-1", **{claim: value}))


# --- refused: claims --------------------------------------------------------------------------


@pytest.mark.parametrize("claim", ["exp", "aud", "iss", "sub", "iat"])
async def test_a_token_missing_a_required_claim_is_refused(token_issuer, verifier, claim):
    reason = await refused(verifier, token_issuer.mint("user-1", drop=[claim]))

    assert "required claim is missing" in reason


async def test_a_token_from_another_issuer_is_refused(token_issuer, verifier):
    reason = await refused(verifier, token_issuer.mint("user-1", iss="https://evil.test"))

    assert "wrong issuer" in reason


@pytest.mark.parametrize("aud", ["another-api", ["another-api", "third-api"], []])
async def test_a_token_for_another_audience_is_refused(token_issuer, verifier, aud):
    await refused(verifier, token_issuer.mint("user-1", aud=aud))


@pytest.mark.parametrize("sub", ["", 42, None], ids=["empty", "number", "null"])
async def test_a_token_with_an_invalid_subject_is_refused(token_issuer, verifier, sub):
    await refused(verifier, token_issuer.mint(sub=sub))


@pytest.mark.parametrize("kind", ["admin", "", None, 1, ["user"]])
async def test_a_token_with_an_invalid_principal_kind_is_refused(token_issuer, verifier, kind):
    reason = await refused(verifier, token_issuer.mint("user-1", principal=kind))

    assert "kind of principal" in reason


async def test_a_token_without_a_principal_kind_is_refused(token_issuer, verifier):
    reason = await refused(verifier, token_issuer.mint("user-1", drop=["principal"]))

    assert "kind of principal" in reason


@pytest.mark.parametrize("scope", [["jobs:read"], 1, {"jobs:read": True}, None])
async def test_a_token_whose_scope_is_not_a_string_is_refused(token_issuer, verifier, scope):
    reason = await refused(verifier, token_issuer.mint("user-1", scope=scope))

    assert "scope" in reason


@pytest.mark.parametrize("generation", [-1, True, 1.5, "3", None, [1]])
async def test_a_token_with_an_invalid_generation_is_refused(token_issuer, verifier, generation):
    reason = await refused(verifier, token_issuer.mint("user-1", generation=generation))

    assert "generation" in reason


# --- refused: header --------------------------------------------------------------------------


async def test_a_token_naming_an_unknown_key_is_refused(token_issuer, verifier):
    token = token_issuer.mint("user-1", headers={"kid": "no-such-key"})

    assert "unknown key" in await refused(verifier, token)


@pytest.mark.parametrize("kid", [None, "", 7], ids=["absent", "empty", "number"])
async def test_a_token_naming_no_usable_key_id_is_refused(token_issuer, verifier, kid):
    fields = header(token_issuer, kid=kid)
    if kid is None:
        del fields["kid"]
    token = forge(fields, claims(token_issuer), es256(signing_key(token_issuer)))

    await refused(verifier, token)


@pytest.mark.parametrize(
    "crit",
    [["x-policy"], ["exp"], [], "x-policy", ["b64"]],
    ids=["unknown", "registered-name", "empty", "not-a-list", "b64-known-to-pyjwt"],
)
async def test_a_token_with_a_crit_header_is_refused(token_issuer, verifier, crit):
    # The verifier implements no extension, not even RFC 7797's `b64` that PyJWT knows.
    token = forge(
        header(token_issuer, crit=crit, b64=True, **{"x-policy": "strict"}),
        claims(token_issuer),
        es256(signing_key(token_issuer)),
    )

    await refused(verifier, token)


@pytest.mark.parametrize(
    "typ",
    ["JWT", "jwt", "at+jwt2", "", None, 1, ["at+jwt"], "absent"],
)
async def test_a_token_that_is_not_typed_as_an_access_token_is_refused(token_issuer, verifier, typ):
    fields = header(token_issuer, typ=typ)
    if typ == "absent":
        del fields["typ"]
    token = forge(fields, claims(token_issuer), es256(signing_key(token_issuer)))

    assert "not an access token" in await refused(verifier, token)


# --- refused: signature -----------------------------------------------------------------------


async def test_a_token_with_a_tampered_payload_is_refused(token_issuer, verifier):
    token = token_issuer.mint("user-1", ["jobs:read"])
    head, payload, signature = token.split(".")
    body = json.loads(unb64(payload))
    body["scope"] = "jobs:read users:admin"
    tampered = f"{head}.{segment(body)}.{signature}"

    assert "bad signature" in await refused(verifier, tampered)


async def test_a_token_with_a_flipped_signature_bit_is_refused(token_issuer, verifier):
    head, payload, signature = token_issuer.mint("user-1").split(".")
    raw = bytearray(unb64(signature))
    raw[-1] ^= 0x01
    tampered = f"{head}.{payload}.{b64(bytes(raw))}"

    assert "bad signature" in await refused(verifier, tampered)


@pytest.mark.parametrize("cut", [1, 8, 32, 64], ids=lambda n: f"{n}-bytes-short")
async def test_a_token_with_a_truncated_signature_is_refused(token_issuer, verifier, cut):
    head, payload, signature = token_issuer.mint("user-1").split(".")
    short = b64(unb64(signature)[:-cut])

    await refused(verifier, f"{head}.{payload}.{short}")


async def test_a_token_signed_by_an_unpublished_key_claiming_a_published_kid_is_refused(
    token_issuer, verifier
):
    impostor = ec.generate_private_key(ec.SECP256R1())
    token = forge(header(token_issuer), claims(token_issuer), es256(impostor))

    assert "bad signature" in await refused(verifier, token)


# --- refused: not a JWT at all ----------------------------------------------------------------


async def test_a_refresh_token_is_refused(verifier):
    assert "not a JWT" in await refused(verifier, opaque.new())


@pytest.mark.parametrize(
    "garbage",
    ["", ".", "..", "a.b.c", "Bearer x", "\ud800.e30.", "é.é.é", "e30.e30.e30", "W10.e30."],
)
async def test_a_string_that_is_not_a_jwt_is_refused(verifier, garbage):
    await refused(verifier, garbage)


# Any text, lone surrogates included (a str need not come from an HTTP header).
ANY_TEXT = st.text() | st.text(st.characters(codec=None, categories=["Cs", "Lu", "Nd", "Po"]))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@hypothesis.settings(
    max_examples=300, suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture]
)
@given(text=ANY_TEXT)
async def test_arbitrary_text_raises_nothing_but_invalid_token(verifier, text):
    with pytest.raises(tokens.InvalidToken):
        await verifier.verify(text)


@hypothesis.settings(
    max_examples=200, suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture]
)
@given(
    extra_header=st.dictionaries(
        st.sampled_from(["alg", "typ", "kid", "crit", "b64", "jku", "x5u"]), JSON_VALUES
    ),
    payload=st.dictionaries(st.text(max_size=8), JSON_VALUES) | JSON_VALUES,
    signature=st.binary(max_size=80),
)
async def test_arbitrary_jws_shaped_tokens_raise_nothing_but_invalid_token(
    token_issuer, verifier, extra_header, payload, signature
):
    token = f"{segment(header(token_issuer, **extra_header))}.{segment(payload)}.{b64(signature)}"

    with pytest.raises(tokens.InvalidToken):
        await verifier.verify(token)


# --- the key cache ----------------------------------------------------------------------------


async def test_a_token_from_a_rotated_key_is_accepted_after_a_refetch(http, own_issuer):
    clock = Clock()
    fetch = CountingFetch(tokens.http_jwks(http, own_issuer.url))
    keys = tokens.KeyCache(fetch, algorithm="ES256", refresh_min_interval_s=10, clock=clock)
    verifier = make_verifier(own_issuer, keys)
    before = own_issuer.mint("user-1")
    await verifier.verify(before)

    own_issuer.add_key()
    after = own_issuer.mint("user-2")
    clock.now += 11  # the minimum interval between fetches has passed

    assert (await verifier.verify(after)).subject == "user-2"
    assert (await verifier.verify(before)).subject == "user-1"
    assert fetch.calls == 2


async def refuse_all(verifier: tokens.Verifier, mint: Callable[[int], str], count: int) -> None:
    results = await asyncio.gather(
        *(verifier.verify(mint(i)) for i in range(count)), return_exceptions=True
    )
    assert all(isinstance(result, tokens.InvalidToken) for result in results), results


async def test_a_burst_of_unknown_kids_fetches_the_jwks_at_most_once(http, own_issuer):
    clock = Clock()
    fetch = CountingFetch(tokens.http_jwks(http, own_issuer.url))
    keys = tokens.KeyCache(fetch, algorithm="ES256", refresh_min_interval_s=60, clock=clock)
    verifier = make_verifier(own_issuer, keys)

    def unknown(i: int) -> str:
        return own_issuer.mint("user-1", headers={"kid": f"unknown-{i}"})

    # Cold cache: fifty requests at once share one fetch.
    await refuse_all(verifier, unknown, 50)
    assert fetch.calls == 1

    # Warm cache: within the minimum interval, unknown kids fetch nothing more.
    clock.now += 59
    await refuse_all(verifier, lambda i: unknown(100 + i), 50)
    assert fetch.calls == 1

    # Past the interval, one more fetch for the next burst, and a known kid still verifies.
    clock.now += 2
    await refuse_all(verifier, lambda i: unknown(200 + i), 50)
    assert fetch.calls == 2
    assert (await verifier.verify(own_issuer.mint("user-1"))).subject == "user-1"
    assert fetch.calls == 2


async def test_a_burst_of_valid_tokens_on_a_cold_cache_fetches_once(http, own_issuer):
    fetch = CountingFetch(tokens.http_jwks(http, own_issuer.url))
    keys = tokens.KeyCache(fetch, algorithm="ES256", refresh_min_interval_s=60, clock=Clock())
    verifier = make_verifier(own_issuer, keys)

    principals = await asyncio.gather(
        *(verifier.verify(own_issuer.mint(f"user-{i}")) for i in range(50))
    )

    assert [p.subject for p in principals] == [f"user-{i}" for i in range(50)]
    assert fetch.calls == 1


@pytest.mark.parametrize(
    ("override", "accepted"),
    [
        ({}, True),
        ({"use": None}, True),  # `use` is optional in a JWK
        ({"use": "enc"}, False),
        ({"alg": "ES384"}, False),
        ({"alg": "RS256"}, False),
        ({"kid": None}, False),
    ],
    ids=["sig", "no-use", "enc", "other-alg-es384", "other-alg-rs256", "no-kid"],
)
async def test_only_signing_keys_of_the_configured_algorithm_are_used(
    http, token_issuer, serve_app, override, accepted
):
    issuer = type(token_issuer)()

    def document() -> dict[str, Any]:
        (jwk,) = issuer.jwks["keys"]
        jwk.update(override)
        return {"keys": [{k: v for k, v in jwk.items() if v is not None}]}

    async with serve_app(jwks_app(document)) as base_url:
        keys = tokens.KeyCache(tokens.http_jwks(http, base_url + JWKS_PATH), algorithm="ES256")
        verifier = make_verifier(issuer, keys)
        token = issuer.mint("user-1")

        if accepted:
            assert (await verifier.verify(token)).subject == "user-1"
        else:
            assert "unknown key" in await refused(verifier, token)


async def test_the_cache_refetches_after_max_age_so_withdrawn_keys_stop_working(http, own_issuer):
    clock = Clock()
    fetch = CountingFetch(tokens.http_jwks(http, own_issuer.url))
    keys = tokens.KeyCache(
        fetch, algorithm="ES256", max_age_s=300, refresh_min_interval_s=60, clock=clock
    )
    verifier = make_verifier(own_issuer, keys)
    old_kid = own_issuer.kid
    old_token = own_issuer.mint("user-1")
    await verifier.verify(old_token)

    own_issuer.add_key()
    del own_issuer.keys[old_kid]  # withdrawn from the JWKS (this issuer is the test's own)
    clock.now += 299
    assert (await verifier.verify(old_token)).subject == "user-1"  # still cached
    assert fetch.calls == 1

    clock.now += 2
    assert "unknown key" in await refused(verifier, old_token)
    assert fetch.calls == 2


async def test_cached_keys_stay_usable_while_the_jwks_endpoint_is_down(
    http, token_issuer, serve_app
):
    issuer = type(token_issuer)()
    clock = Clock()
    async with serve_app(jwks_app(lambda: issuer.jwks)) as base_url:
        fetch = CountingFetch(tokens.http_jwks(http, base_url + JWKS_PATH))
        keys = tokens.KeyCache(
            fetch, algorithm="ES256", max_age_s=300, refresh_min_interval_s=60, clock=clock
        )
        verifier = make_verifier(issuer, keys)
        token = issuer.mint("user-1")
        await verifier.verify(token)
    # The server has stopped: its port is closed.

    clock.now += 1_000  # the cache is stale: it tries to refetch, fails, and keeps its keys
    assert (await verifier.verify(token)).subject == "user-1"
    assert fetch.calls == 2

    # A failed refetch is retried at most once per minimum interval, however many requests
    # come, so a down auth service is not hammered (nor every request slowed by a timeout).
    results = await asyncio.gather(
        *(verifier.verify(issuer.mint("user-1", headers={"kid": f"x-{i}"})) for i in range(20)),
        *(verifier.verify(token) for _ in range(20)),
        return_exceptions=True,
    )
    assert all(isinstance(result, tokens.InvalidToken) for result in results[:20])
    assert all(isinstance(result, tokens.Principal) for result in results[20:])
    assert fetch.calls == 2

    clock.now += 61
    assert (await verifier.verify(token)).subject == "user-1"
    assert fetch.calls == 3


async def test_an_unreachable_jwks_endpoint_refuses_tokens_without_crashing(http, token_issuer):
    closed = f"http://127.0.0.1:{embedded.free_port()}{JWKS_PATH}"
    keys = tokens.KeyCache(tokens.http_jwks(http, closed), algorithm="ES256")
    verifier = make_verifier(token_issuer, keys)

    assert "unknown key" in await refused(verifier, token_issuer.mint("user-1"))


@pytest.mark.parametrize(
    "document",
    [{"keys": []}, {"keys": "x"}, {}, [], [1, 2], "text", {"keys": [{"kty": "EC"}]}],
    ids=["empty", "keys-not-list", "no-keys", "list", "list-of-ints", "text", "broken-key"],
)
async def test_a_malformed_jwks_document_refuses_tokens_without_crashing(
    http, token_issuer, serve_app, document
):
    async def jwks(_request: Request) -> JSONResponse:
        return JSONResponse(document)

    app = Starlette(routes=[Route(JWKS_PATH, jwks)])
    async with serve_app(app) as base_url:
        keys = tokens.KeyCache(tokens.http_jwks(http, base_url + JWKS_PATH), algorithm="ES256")
        verifier = make_verifier(token_issuer, keys)

        assert "unknown key" in await refused(verifier, token_issuer.mint("user-1"))
