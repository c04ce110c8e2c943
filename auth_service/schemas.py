"""Requests and responses of the auth service.

The token and revocation endpoints take `application/x-www-form-urlencoded` bodies (RFC 6749
appendix B), read here rather than by FastAPI's form support: RFC 6749 section 3.2 refuses a
repeated parameter and treats an empty one as absent, and the body has a size cap. Every value
is checked for what the platform refuses everywhere (NUL bytes, invalid UTF-8) and for length.
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse
from dataclasses import dataclass

from fastapi import Request
from pydantic import BaseModel

from auth_service import errors

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 8 * 1024
MAX_FORM_FIELDS = 16
# Longest value accepted per parameter; anything longer is not a real value and would only
# cost argon2 time (a password) or memory.
MAX_LENGTHS = {
    "username": 320,  # the longest email address RFC 5321 allows
    "password": 1024,
    "refresh_token": 256,
    "token": 4096,  # an access token may be presented for revocation too
    "client_id": 256,
    "client_secret": 256,
    "scope": 1024,
}
MAX_OTHER_LENGTH = 256


@dataclass(frozen=True)
class PasswordGrant:
    username: str
    password: str
    scope: str | None = None

    def __repr__(self) -> str:  # never show the password, not even in a traceback
        return f"PasswordGrant(username=<{len(self.username)} chars>, scope={self.scope!r})"


@dataclass(frozen=True)
class ClientCredentialsGrant:
    client_id: str
    client_secret: str
    scope: str | None = None

    def __repr__(self) -> str:
        return f"ClientCredentialsGrant(client_id={self.client_id!r}, scope={self.scope!r})"


@dataclass(frozen=True)
class RefreshGrant:
    refresh_token: str
    scope: str | None = None

    def __repr__(self) -> str:
        return f"RefreshGrant(scope={self.scope!r})"


Grant = PasswordGrant | ClientCredentialsGrant | RefreshGrant


@dataclass(frozen=True)
class RevocationRequest:
    token: str
    token_type_hint: str | None = None

    def __repr__(self) -> str:
        return f"RevocationRequest(token_type_hint={self.token_type_hint!r})"


class TokenResponse(BaseModel):
    """RFC 6749 section 5.1 (its names, snake_case: `auth_service.api.OAUTH_SCHEMAS`)."""

    access_token: str
    token_type: str = "Bearer"  # noqa: S105 (the scheme's name, not a secret)
    expires_in: int
    scope: str
    refresh_token: str | None = None


class ServerMetadata(BaseModel):
    """RFC 8414 section 2 (its names, snake_case: `auth_service.api.OAUTH_SCHEMAS`)."""

    issuer: str
    token_endpoint: str
    revocation_endpoint: str
    jwks_uri: str
    grant_types_supported: list[str]
    scopes_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    revocation_endpoint_auth_methods_supported: list[str]


async def read_form(request: Request) -> dict[str, str]:
    """The parameters of a form-encoded body: each at most once, empty ones dropped."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != FORM_MEDIA_TYPE:
        raise errors.InvalidRequest(f"the body must be {FORM_MEDIA_TYPE}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise errors.RequestTooLarge(f"the body is larger than {MAX_FORM_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise errors.RequestTooLarge(f"the body is larger than {MAX_FORM_BYTES} bytes")
    try:
        pairs = urllib.parse.parse_qsl(
            body.decode("ascii"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise errors.InvalidRequest("the body is not a valid form-encoded UTF-8 form") from None
    form: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in pairs:
        if "\x00" in name or "\x00" in value:
            raise errors.InvalidRequest("a parameter contains a NUL character")
        if name in seen:
            raise errors.InvalidRequest(f"the parameter '{name}' is repeated")
        seen.add(name)
        if len(value) > MAX_LENGTHS.get(name, MAX_OTHER_LENGTH):
            raise errors.InvalidRequest(f"the parameter '{name}' is too long")
        if value:
            form[name] = value
    return form


def _required(form: dict[str, str], name: str) -> str:
    value = form.get(name)
    if value is None:
        raise errors.InvalidRequest(f"the parameter '{name}' is required")
    return value


def token_request(form: dict[str, str], authorization: str | None) -> Grant:
    """The grant a token request asks for; `authorization` is its Authorization header."""
    grant_type = _required(form, "grant_type")
    if grant_type == "password":
        return PasswordGrant(
            _required(form, "username"), _required(form, "password"), form.get("scope")
        )
    if grant_type == "refresh_token":
        return RefreshGrant(_required(form, "refresh_token"), form.get("scope"))
    if grant_type == "client_credentials":
        client_id, client_secret = client_credentials(form, authorization)
        return ClientCredentialsGrant(client_id, client_secret, form.get("scope"))
    raise errors.UnsupportedGrantType(f"the grant type '{grant_type}' is not supported")


def client_credentials(form: dict[str, str], authorization: str | None) -> tuple[str, str]:
    """The client's id and secret, from HTTP Basic or from the form, never both (RFC 6749
    section 2.3.1). In Basic, each is form-encoded before the base64."""
    basic = _basic(authorization)
    if basic is None:
        if "client_id" not in form or "client_secret" not in form:
            raise errors.InvalidClient("client authentication is required")
        return form["client_id"], form["client_secret"]
    if "client_secret" in form:
        raise errors.InvalidRequest("use one way of client authentication, not two")
    if form.get("client_id", basic[0]) != basic[0]:
        raise errors.InvalidRequest("client_id differs from the client authenticated")
    return basic


def _basic(authorization: str | None) -> tuple[str, str] | None:
    if authorization is None:
        return None
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        raise errors.InvalidClient("client authentication must use the Basic scheme")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        client_id, colon, secret = decoded.partition(":")
        client_id = urllib.parse.unquote_plus(client_id, errors="strict")
        secret = urllib.parse.unquote_plus(secret, errors="strict")
    except (binascii.Error, UnicodeDecodeError):
        raise errors.InvalidClient("the Basic credentials are malformed") from None
    if not colon or not client_id or not secret or "\x00" in client_id + secret:
        raise errors.InvalidClient("the Basic credentials are malformed")
    if max(len(client_id), len(secret)) > MAX_LENGTHS["client_id"]:
        raise errors.InvalidClient("the Basic credentials are malformed")
    return client_id, secret


def revocation_request(form: dict[str, str]) -> RevocationRequest:
    return RevocationRequest(_required(form, "token"), form.get("token_type_hint"))
