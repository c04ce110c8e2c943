"""What protects every answer and every state change of the console.

- `SecurityHeaders`: the Content-Security-Policy (scripts, styles and everything else from the
  console's own origin only; no inline script or style anywhere), `nosniff`, a same-origin
  referrer, and `Cache-Control: no-store` on everything but the static files.
- CSRF: every state change is a POST carrying the session's synchronizer token, as the hidden
  form field `csrf` or, from htmx, the `X-CSRF-Token` header (console.js copies it from the
  page's `<meta name="csrf-token">`); `Origin` and `Sec-Fetch-Site`, when the browser sends
  them, must name this origin. The sign-in form, before any session exists, is protected by a
  double-submitted token: a cookie and the same value in the form.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from console_service import errors

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
STATIC_PREFIX = "/static/"
_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)
# Static files are public and versioned with the console: a browser revalidates them.
_STATIC_CACHE = b"no-cache"
_PAGE_CACHE = b"no-store"

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
# `Sec-Fetch-Site` values of a request this origin's own pages made (or the user typed).
_OWN_SITES = frozenset({"same-origin", "none"})


class SecurityHeaders:
    """Adds the security headers to every answer (errors and operational endpoints too)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith(STATIC_PREFIX)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0] != b"cache-control"]
                headers.extend(_HEADERS)
                headers.append((b"cache-control", _STATIC_CACHE if static else _PAGE_CACHE))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def new_token() -> str:
    """A CSRF token: 32 random bytes, base64url."""
    return secrets.token_urlsafe(32)


def check_origin(request: Request) -> None:
    """Raise `CsrfRefused` unless the request came from this origin, as far as the browser
    says (`Sec-Fetch-Site`, `Origin`); a request that says nothing is judged by its token."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in _OWN_SITES:
        raise errors.CsrfRefused(f"Sec-Fetch-Site: {site}")
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise errors.CsrfRefused("Origin of another site")


async def submitted_token(request: Request) -> str | None:
    """The CSRF token the request carries: its `X-CSRF-Token` header, else its form's `csrf`."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return None
    value = (await request.form()).get(CSRF_FIELD)
    return value if isinstance(value, str) else None


async def check_state_change(request: Request, expected: str | None) -> None:
    """Raise `CsrfRefused` unless an unsafe request carries `expected` and came from this
    origin. Safe methods (GET, HEAD) pass: they never change anything."""
    if request.method in SAFE_METHODS:
        return
    check_origin(request)
    token = await submitted_token(request)
    if not expected or not token or not hmac.compare_digest(token, expected):
        raise errors.CsrfRefused("missing or wrong CSRF token")
