"""Email addresses as the platform stores them: trimmed, lower-cased, plausibly formed.

The check is syntactic and deliberately simple (one '@', a non-empty local part, a domain with
a dot): whether an address can receive mail is only known by sending to it, and the RFC 5322
grammar admits forms no user types by mistake nor any mail system accepts.
"""

from __future__ import annotations

import unicodedata

MAX_LENGTH = 254  # RFC 5321's limit on a forward path, less the angle brackets


def normalise(email: str) -> str:
    """How an address is stored and compared: without surrounding whitespace, lower-cased."""
    return email.strip().lower()


def problem(email: str) -> str | None:
    """Why `email` (already normalised) is not an acceptable address, or None when it is."""
    if not email:
        return "the email is empty"
    if len(email) > MAX_LENGTH:
        return f"the email is longer than {MAX_LENGTH} characters"
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in email):
        return "the email must not contain spaces or control characters"
    local, at, domain = email.partition("@")
    if not at or "@" in domain:
        return "the email must contain exactly one '@'"
    if not local:
        return "the email has nothing before the '@'"
    labels = domain.split(".")
    if len(labels) < 2 or not all(labels):
        return "the email's domain must be a name with a dot, like example.com"
    return None


def local_part(email: str) -> str:
    return email.partition("@")[0]
