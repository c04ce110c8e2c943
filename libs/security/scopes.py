"""OAuth scopes: what exists, what each role may hold, and how a request is narrowed.

A scope string is space-separated (RFC 6749, section 3.3). Roles map to scopes here, in one
place; a service account's scopes are chosen by the admin who creates it, within `ALL`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from libs.scheduling.states import Role

JOBS_READ = "jobs:read"
JOBS_WRITE = "jobs:write"
JOBS_RUN = "jobs:run"
USERS_ADMIN = "users:admin"

ALL = frozenset({JOBS_READ, JOBS_WRITE, JOBS_RUN, USERS_ADMIN})
ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.USER: frozenset({JOBS_READ, JOBS_WRITE, JOBS_RUN}),
    Role.ADMIN: ALL,
}

# RFC 6749 scope-token: printable ASCII except space, double quote and backslash.
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]+$")


class InvalidScope(ValueError):
    """A scope string is malformed, names an unknown scope, or asks for nothing allowed."""


def parse(scope: str | None) -> frozenset[str] | None:
    """The scopes a request names, or None when it names none (meaning: all it may have)."""
    if scope is None or not scope.strip():
        return None
    tokens = scope.split(" ")
    # fullmatch: `match` with `$` would accept a trailing newline ("jobs:read\n").
    if any(not _SCOPE_TOKEN.fullmatch(token) for token in tokens):
        raise InvalidScope("the scope must be scope names separated by single spaces")
    unknown = sorted(set(tokens) - ALL)
    if unknown:
        raise InvalidScope(f"unknown scope: {' '.join(unknown)}")
    return frozenset(tokens)


def narrow(requested: frozenset[str] | None, allowed: Iterable[str]) -> frozenset[str]:
    """What to grant: the requested scopes that are allowed (all allowed when none requested).

    Raises `InvalidScope` when nothing requested is allowed, rather than issuing a token that
    can do nothing.
    """
    allowed = frozenset(allowed)
    granted = allowed if requested is None else requested & allowed
    if not granted:
        raise InvalidScope("none of the requested scopes is allowed")
    return granted


def for_role(role: str) -> frozenset[str]:
    return ROLE_SCOPES[Role(role)]


def render(scopes: Iterable[str]) -> str:
    """The space-separated scope string of `scopes`, in a stable order."""
    return " ".join(sorted(scopes))
