"""Access-token verification, shared by every service that serves a protected API.

Access tokens are JWTs (RFC 9068 profile, header `typ: at+jwt`) signed by the auth service
with an asymmetric key. A verifier accepts exactly the configured algorithm (never `none`,
never an HMAC algorithm, so a token "signed" with the public key as an HMAC secret fails),
requires `kid`, `iss`, `aud`, `exp`, `iat` and `sub`, honours `nbf`, allows a small clock
leeway, refuses any `crit` header (it implements no extension), and takes public keys from the
auth service's JWKS: cached, refetched when a token names an unknown `kid` (at most once per
`refresh_min_interval_s`, so garbage tokens cannot make it hammer the auth service), and
periodically, so keys rotate without downtime.

A token also carries its account's generation (claim `generation`, 0 when absent), which
`libs.security.revocation` compares with the account's current one: a valid signature says who
issued the token, not whether the account still stands behind it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import jwt
from jwt import PyJWK, PyJWKSet

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 (a media type, not a secret)
ASYMMETRIC_ALGORITHMS = ("ES256", "RS256")
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "sub")
PRINCIPAL_CLAIM = "principal"  # "user" or "service_account"
GENERATION_CLAIM = (
    "generation"  # the account's token generation at issue (libs.security.revocation)
)
PrincipalKind = Literal["user", "service_account"]


class InvalidToken(Exception):
    """The token cannot be accepted; the message says why in terms safe to show the client."""


@dataclass(frozen=True)
class Principal:
    """Who made a request, as an access token says."""

    subject: str
    kind: PrincipalKind
    scopes: frozenset[str]
    token_id: str
    expires_at: int
    # The account's token generation when the token was issued; 0 for a token without one.
    generation: int = 0

    @property
    def is_user(self) -> bool:
        return self.kind == "user"


KeyFetcher = Callable[[], Awaitable[Mapping[str, Any]]]


def http_jwks(client: httpx.AsyncClient, url: str) -> KeyFetcher:
    """Fetch the JWKS document at `url` with `client`."""

    async def fetch() -> Mapping[str, Any]:
        response = await client.get(url, headers={"accept": "application/json"})
        response.raise_for_status()
        return response.json()

    return fetch


class KeyCache:
    """Public keys by `kid`, from a JWKS document fetched on demand."""

    def __init__(
        self,
        fetch: KeyFetcher,
        *,
        algorithm: str,
        max_age_s: float = 300.0,
        refresh_min_interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._fetch = fetch
        self._algorithm = algorithm
        self._max_age_s = max_age_s
        self._refresh_min_interval_s = refresh_min_interval_s
        self._clock = clock
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None  # of the last successful fetch
        self._attempted_at: float | None = None  # of the last fetch, failed or not
        self._lock = asyncio.Lock()

    async def get(self, kid: str) -> PyJWK | None:
        """The key named `kid`, or None; fetches the JWKS first if it lacks `kid` or is stale."""
        if kid not in self._keys or self._stale(self._clock()):
            await self._refresh(kid)
        return self._keys.get(kid)

    def _stale(self, now: float) -> bool:
        return self._fetched_at is None or now - self._fetched_at > self._max_age_s

    async def _refresh(self, kid: str) -> None:
        async with self._lock:
            now = self._clock()
            # Decided under the lock, so that callers queued behind a fetch use its result
            # instead of each fetching again (a burst on a cold or stale cache is one fetch),
            # and a failed fetch is not retried sooner than a successful one would be.
            if kid in self._keys and not self._stale(now):
                return
            if (
                self._attempted_at is not None
                and now - self._attempted_at < self._refresh_min_interval_s
            ):
                return
            self._attempted_at = now
            try:
                document = await self._fetch()
                if not isinstance(document, Mapping):
                    raise ValueError("the JWKS document is not a JSON object")
                keys = PyJWKSet.from_dict(dict(document)).keys
            except (httpx.HTTPError, ValueError, jwt.PyJWKSetError, jwt.PyJWKError):
                # Keep the keys we have; a fetch is tried again after the minimum interval.
                return
            self._keys = {
                key.key_id: key
                for key in keys
                if key.key_id
                and key.public_key_use in (None, "sig")
                and key.algorithm_name == self._algorithm
            }
            self._fetched_at = now


class Verifier:
    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        algorithm: str,
        keys: KeyCache,
        leeway_s: float = 30.0,
    ):
        if algorithm not in ASYMMETRIC_ALGORITHMS:
            raise ValueError(f"access tokens are verified with one of {ASYMMETRIC_ALGORITHMS}")
        self.issuer = issuer
        self.audience = audience
        self.algorithm = algorithm
        self.keys = keys
        self.leeway_s = leeway_s

    async def verify(self, token: str) -> Principal:
        """The principal `token` speaks for, or `InvalidToken` saying why not."""
        if not token.isascii():  # PyJWT would raise UnicodeEncodeError on a lone surrogate
            raise InvalidToken("the token is not a JWT")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("the token is not a JWT") from exc
        if header.get("alg") != self.algorithm:
            raise InvalidToken("the token's algorithm is not accepted")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in (ACCESS_TOKEN_TYPE, "application/at+jwt"):
            raise InvalidToken("the token is not an access token")
        if "crit" in header:
            raise InvalidToken("the token requires an extension this server does not support")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("the token names no key")
        key = await self.keys.get(kid)
        if key is None:
            raise InvalidToken("the token is signed by an unknown key")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[self.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": list(REQUIRED_CLAIMS), "strict_aud": False},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("the token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise InvalidToken("the token is not valid yet") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"the token is not valid ({_reason(exc)})") from exc
        return _principal(claims)


def _reason(exc: jwt.PyJWTError) -> str:
    reasons = {
        jwt.InvalidAudienceError: "wrong audience",
        jwt.InvalidIssuerError: "wrong issuer",
        jwt.InvalidSignatureError: "bad signature",
        jwt.MissingRequiredClaimError: "a required claim is missing",
        jwt.InvalidIssuedAtError: "bad issue time",
    }
    return next((text for kind, text in reasons.items() if isinstance(exc, kind)), "malformed")


def _principal(claims: Mapping[str, Any]) -> Principal:
    subject, scope, kind = claims.get("sub"), claims.get("scope", ""), claims.get(PRINCIPAL_CLAIM)
    if not isinstance(subject, str) or not subject:
        raise InvalidToken("the token's subject is not valid")
    if not isinstance(scope, str):
        raise InvalidToken("the token's scope is not valid")
    if kind not in ("user", "service_account"):
        raise InvalidToken("the token does not say what kind of principal it is for")
    generation = claims.get(GENERATION_CLAIM, 0)
    # bool is an int in Python, never a generation.
    if type(generation) is not int or generation < 0:
        raise InvalidToken("the token's generation is not valid")
    return Principal(
        subject=subject,
        kind=kind,
        scopes=frozenset(scope.split()),
        token_id=str(claims.get("jti", "")),
        expires_at=int(claims["exp"]),
        generation=generation,
    )
