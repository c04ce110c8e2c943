"""The auth service's errors, each named for what went wrong and rendered as a problem document.

Errors of the token and revocation endpoints are RFC 9457 problem documents that also carry
RFC 6749's members `error` and `error_description` (docs/adr/0004-token-endpoint-errors.md),
so a generic OAuth client and a problem-aware one both understand them. None of them says
whether an account exists.
"""

from __future__ import annotations

from typing import ClassVar

from libs.contracts import problems

# RFC 6749 section 5.1: nothing the token endpoint answers may be cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
BASIC_REALM = "scheduler"


class OAuthProblem(problems.Problem):
    """A problem document with RFC 6749's `error` and `error_description` members."""

    error: ClassVar[str] = "invalid_request"

    def __init__(self, description: str, *, headers: dict[str, str] | None = None):
        super().__init__(
            description,
            headers={**NO_STORE, **(headers or {})},
            error=self.error,
            error_description=description,
        )


class InvalidRequest(OAuthProblem):
    """A parameter is missing, repeated, malformed or not allowed."""

    status = 400
    slug = "oauth/invalid-request"
    title = "The token request is not valid"
    error = "invalid_request"


class InvalidClient(OAuthProblem):
    """Client authentication failed: unknown client, wrong secret, or a disabled account.

    Always 401 with a `Basic` challenge: RFC 6749 requires it when the client used the
    Authorization header, and allows it otherwise (RFC 9110 wants a challenge with every 401).
    """

    status = 401
    slug = "oauth/invalid-client"
    title = "Client authentication failed"
    error = "invalid_client"

    def __init__(self, description: str = "client authentication failed"):
        super().__init__(description, headers={"WWW-Authenticate": f'Basic realm="{BASIC_REALM}"'})


class InvalidGrant(OAuthProblem):
    """The credentials or the refresh token are not valid (unknown, wrong, expired, revoked,
    reused, or the account is disabled)."""

    status = 400
    slug = "oauth/invalid-grant"
    title = "The grant is not valid"
    error = "invalid_grant"


class InvalidScope(OAuthProblem):
    status = 400
    slug = "oauth/invalid-scope"
    title = "The requested scope is not valid"
    error = "invalid_scope"


class UnsupportedGrantType(OAuthProblem):
    status = 400
    slug = "oauth/unsupported-grant-type"
    title = "The grant type is not supported"
    error = "unsupported_grant_type"


class RequestTooLarge(OAuthProblem):
    status = 413
    slug = "payload-too-large"
    title = "Payload too large"
    error = "invalid_request"


class LoginLocked(OAuthProblem):
    """Too many failed logins for this account or from this address: wait `retry_after_s`.

    The same answer whether or not the account exists. RFC 6749 has no code for it;
    `temporarily_unavailable` is the nearest, and the problem `type` says which case it is.
    """

    status = 429
    slug = "oauth/login-locked"
    title = "Too many failed logins"
    error = "temporarily_unavailable"

    def __init__(self, retry_after_s: int):
        super().__init__(
            "too many failed logins; try again later",
            headers={"Retry-After": str(retry_after_s)},
        )


class LoginsBusy(OAuthProblem):
    """Too many password verifications are running or queued; retry shortly."""

    status = 503
    slug = "oauth/logins-busy"
    title = "Too many logins at once"
    error = "temporarily_unavailable"
    RETRY_AFTER_S = 1

    def __init__(self) -> None:
        super().__init__(
            "the server is verifying too many passwords at once; try again shortly",
            headers={"Retry-After": str(self.RETRY_AFTER_S)},
        )


class SigningKeyUnavailable(Exception):
    """The stored signing key cannot be used (it cannot be decrypted, or it is of another
    algorithm than the configured one). Raised at start-up and by the rotation command."""


class RotationTooSoon(Exception):
    """Retiring the previous key now would invalidate tokens it signed that have not expired."""

    def __init__(self, safe_in_s: int):
        super().__init__(
            f"the previous signing key may still verify unexpired tokens for {safe_in_s} s; "
            "rotate again after that, or force it (tokens it signed will then be refused)"
        )
        self.safe_in_s = safe_in_s
