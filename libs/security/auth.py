"""The FastAPI dependency that authenticates a request and requires scopes.

    @router.get("/v1/jobs")
    async def list_jobs(principal: Principal = Depends(auth.require(scopes.JOBS_READ))): ...

No token, or one the verifier refuses: 401 with `WWW-Authenticate: Bearer` (RFC 6750), with
`error="invalid_token"` when a token was presented. A valid token whose account no longer
stands behind it (`libs.security.revocation`): 401 `invalid_token` when the account is gone or
changed since the token was issued, 403 `account-disabled` while it is disabled. A valid token
without every required scope: 403 `insufficient_scope`, naming the scopes needed. All are problem
documents.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from libs.contracts import problems
from libs.security import revocation, tokens
from libs.security.tokens import Principal

REALM = "scheduler"


class Unauthenticated(problems.Problem):
    status = 401
    slug = "unauthenticated"
    title = "Authentication required"


class InsufficientScope(problems.Problem):
    status = 403
    slug = "insufficient-scope"
    title = "The token lacks a required scope"


class AccountDisabled(problems.Problem):
    status = 403
    slug = "account-disabled"
    title = "The account is disabled"

    def __init__(self, detail: str = "the account this token was issued for is disabled"):
        super().__init__(detail)


def _challenge(**params: str) -> dict[str, str]:
    rendered = ", ".join([f'realm="{REALM}"', *(f'{k}="{v}"' for k, v in params.items())])
    return {"WWW-Authenticate": f"Bearer {rendered}"}


class TokenRefused(Unauthenticated):
    """A token was presented and cannot be honoured (RFC 6750 `invalid_token`)."""

    def __init__(self, detail: str):
        super().__init__(
            detail, headers=_challenge(error="invalid_token", error_description=detail)
        )


class AccountGone(TokenRefused):
    def __init__(self) -> None:
        super().__init__("the account this token was issued for no longer exists")


class TokenRevoked(TokenRefused):
    def __init__(self) -> None:
        super().__init__("the token was revoked: its account changed since it was issued")


_REFUSALS: dict[revocation.Verdict, type[problems.Problem]] = {
    revocation.Verdict.GONE: AccountGone,
    revocation.Verdict.DISABLED: AccountDisabled,
    revocation.Verdict.REVOKED: TokenRevoked,
}


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "the Authorization header must be 'Bearer <token>'",
            headers=_challenge(error="invalid_request"),
        )
    return token.strip()


def require(*required: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency giving the request's principal, which must hold every scope in `required`."""
    needed = frozenset(required)

    async def authenticate(request: Request) -> Principal:
        token = bearer_token(request)
        if token is None:
            raise Unauthenticated("this endpoint requires a bearer token", headers=_challenge())
        verifier: tokens.Verifier = request.app.state.verifier
        standings: revocation.StandingCache = request.app.state.standings
        try:
            principal = await verifier.verify(token)
        except tokens.InvalidToken as exc:
            raise TokenRefused(str(exc)) from None
        verdict = await standings.verdict(principal)
        if verdict is not revocation.Verdict.HONOURED:
            raise _REFUSALS[verdict]()
        missing = needed - principal.scopes
        if missing:
            scope = " ".join(sorted(needed))
            raise InsufficientScope(
                f"this request needs the scope {scope}",
                headers=_challenge(error="insufficient_scope", scope=scope),
                required_scope=scope,
            )
        return principal

    return authenticate
