"""The console's own errors, each rendered once by `rendering.install` (errors of the APIs are
the client library's `scheduler_client.errors`, rendered there too).

Page code raises these and never builds an error answer itself.
"""

from __future__ import annotations


class ConsoleError(Exception):
    """Base of the console's errors."""


class SignInRequired(ConsoleError):
    """No session (no cookie, or one whose session ended or never existed): the browser is
    sent to the sign-in page, which brings it back afterwards."""


class SessionEnded(ConsoleError):
    """The session can no longer call the APIs (its refresh token was refused, or a fresh
    access token was refused too): it is deleted and the browser sent to sign in again."""


class CsrfRefused(ConsoleError):
    """A state-changing request without this session's CSRF token, or from another site:
    answered 403, nothing changed."""


class PageNotFound(ConsoleError):
    """No such page for this account (an admin page asked for by a non-admin included)."""
