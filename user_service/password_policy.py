"""What a new password must be: long enough, not absurdly long, not the account's own email,
and not one of the passwords every guessing attack tries first.

Pure functions, no I/O: the service applies them to registrations and password changes. The
rules follow NIST SP 800-63B: a minimum length, a deny-list of common choices, no composition
rules (they make passwords harder to remember, not harder to guess).
"""

from __future__ import annotations

from enum import StrEnum

from libs.security import emails

MIN_LENGTH = 12  # Unicode code points, not bytes: "ü" counts once
MAX_LENGTH = 1024  # bounds the hashing work one request can ask for

# Common passwords of at least MIN_LENGTH characters, lower-case (compared case-insensitively).
# Shorter ones are refused by the length rule already. Drawn from public breach corpora.
COMMON_PASSWORDS = frozenset(
    {
        "123456789012",
        "1234567890123",
        "12345678901234",
        "123456789123",
        "123123123123",
        "111111111111",
        "000000000000",
        "121212121212",
        "123456123456",
        "987654321098",
        "password1234",
        "password12345",
        "password123456",
        "password123!",
        "password1234!",
        "passwordpassword",
        "password@123",
        "p@ssw0rd1234",
        "p@ssword1234",
        "passw0rd1234",
        "qwertyuiopas",
        "qwertyuiop12",
        "qwertyuiop123",
        "qwertyuiopasdfgh",
        "qwerty123456",
        "qwerty123456789",
        "1qaz2wsx3edc",
        "1qaz2wsx3edc4rfv",
        "zaq12wsxcde3",
        "asdfghjkl123",
        "asdfghjklqwe",
        "zxcvbnm12345",
        "abcdefghijkl",
        "abcdefghijklmnop",
        "abcd12345678",
        "abc123456789",
        "aaaaaaaaaaaa",
        "iloveyou1234",
        "iloveyouforever",
        "letmein12345",
        "letmeinplease",
        "welcome12345",
        "welcome@1234",
        "welcometothejungle",
        "administrator",
        "admin1234567",
        "adminadmin123",
        "changeme1234",
        "changemenow!",
        "trustno1trustno1",
        "sunshine1234",
        "princess1234",
        "football1234",
        "baseball1234",
        "basketball12",
        "superman1234",
        "starwars1234",
        "monkey123456",
        "dragon123456",
        "master123456",
        "michael12345",
        "jennifer1234",
        "charlie12345",
        "whatever1234",
        "correcthorsebatterystaple",
        "thequickbrownfox",
        "mypassword123",
        "secretpassword",
        "supersecret123",
        "qazwsxedcrfv",
        "q1w2e3r4t5y6",
        "1q2w3e4r5t6y",
        "a1b2c3d4e5f6",
        "summer2024!!",
        "winter2024!!",
        "spring2024!!",
        "autumn2024!!",
    }
)


class Violation(StrEnum):
    """Why a password is refused; the value is the code the API reports."""

    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    MATCHES_EMAIL = "matches_email"
    COMMON = "common"


MESSAGES = {
    Violation.TOO_SHORT: f"the password must be at least {MIN_LENGTH} characters long",
    Violation.TOO_LONG: f"the password must be at most {MAX_LENGTH} characters long",
    Violation.MATCHES_EMAIL: "the password must not be the account's email or part of it",
    Violation.COMMON: "the password is too common; choose one that is harder to guess",
}


def violation(password: str, email: str) -> Violation | None:
    """The first rule `password` breaks for the account with `email` (normalised), or None."""
    if len(password) < MIN_LENGTH:
        return Violation.TOO_SHORT
    if len(password) > MAX_LENGTH:
        return Violation.TOO_LONG
    folded = password.casefold()
    if folded in (email.casefold(), emails.local_part(email).casefold()):
        return Violation.MATCHES_EMAIL
    if password.lower() in COMMON_PASSWORDS or folded in COMMON_PASSWORDS:
        return Violation.COMMON
    return None
