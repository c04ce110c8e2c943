"""The password policy (`user_service.password_policy`) and the email rules it leans on
(`user_service.emails`): tables of named cases, and properties over generated passwords."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from libs.security import emails
from user_service import password_policy
from user_service.password_policy import Violation

EMAIL = "ann.lee@example.com"


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("a" * 11, Violation.TOO_SHORT),
        ("", Violation.TOO_SHORT),
        ("ü" * 11, Violation.TOO_SHORT),  # 22 bytes in UTF-8, 11 code points
        ("🙂" * 11, Violation.TOO_SHORT),  # 44 bytes, 11 code points
        ("ü" * 12, None),
        ("🙂" * 12, None),
        ("x" * 12, None),
        ("x" * 1024, None),
        ("x" * 1025, Violation.TOO_LONG),
        (EMAIL, Violation.MATCHES_EMAIL),
        (EMAIL.upper(), Violation.MATCHES_EMAIL),
        ("ANN.LEE@example.COM", Violation.MATCHES_EMAIL),
        (EMAIL + "!", None),  # containing the email is not being it
        ("password1234", Violation.COMMON),
        ("PASSWORD1234", Violation.COMMON),
        ("PassWord1234", Violation.COMMON),
        ("123456789012", Violation.COMMON),
        ("QwErTyUiOpAs", Violation.COMMON),
        ("password12345678", None),  # not on the list
        ("correct horse battery staple", None),
    ],
    ids=lambda value: repr(value)[:30] if isinstance(value, str) else str(value),
)
def test_policy_table(password, expected):
    assert password_policy.violation(password, EMAIL) == expected


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("ann.lee.smith@example.com", "ann.lee.smith"),
        ("ann.lee.smith@example.com", "ANN.LEE.SMITH"),
        ("verylongname@example.com", "VeryLongName"),
    ],
)
def test_the_local_part_of_the_email_is_refused(email, password):
    assert password_policy.violation(password, email) == Violation.MATCHES_EMAIL


def test_the_length_rule_is_checked_before_the_others():
    # A short local part is too short to be a password at all: that is the reason given.
    assert password_policy.violation("ann", "ann@example.com") == Violation.TOO_SHORT


def test_every_deny_listed_password_is_long_enough_to_need_the_list():
    assert 50 <= len(password_policy.COMMON_PASSWORDS) <= 100
    for common in password_policy.COMMON_PASSWORDS:
        assert len(common) >= password_policy.MIN_LENGTH, common
        assert common == common.lower(), common


def test_every_violation_has_a_message():
    assert set(password_policy.MESSAGES) == set(Violation)


LOCAL_PARTS = st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,30}", fullmatch=True)
DOMAINS = st.from_regex(r"[a-z0-9-]{1,20}\.[a-z]{2,10}", fullmatch=True)
GENERATED_EMAILS = st.builds(lambda local, domain: f"{local}@{domain}", LOCAL_PARTS, DOMAINS)


@given(password=st.text(min_size=12, max_size=200), email=GENERATED_EMAILS)
def test_any_long_uncommon_password_that_is_not_the_email_is_accepted(password, email):
    folded = password.casefold()
    assume(folded not in (email, emails.local_part(email)))
    assume(password.lower() not in password_policy.COMMON_PASSWORDS)
    assume(folded not in password_policy.COMMON_PASSWORDS)

    assert password_policy.violation(password, email) is None


@given(password=st.text(max_size=11), email=GENERATED_EMAILS)
def test_any_password_under_twelve_code_points_is_refused(password, email):
    assert password_policy.violation(password, email) == Violation.TOO_SHORT


@given(common=st.sampled_from(sorted(password_policy.COMMON_PASSWORDS)), data=st.data())
def test_a_deny_listed_password_is_refused_in_any_case(common, data):
    flips = data.draw(st.lists(st.booleans(), min_size=len(common), max_size=len(common)))
    variant = "".join(ch.upper() if flip else ch for ch, flip in zip(common, flips, strict=True))

    assert password_policy.violation(variant, EMAIL) == Violation.COMMON


@given(email=GENERATED_EMAILS, data=st.data())
def test_the_email_and_its_local_part_are_refused_in_any_case(email, data):
    target = data.draw(st.sampled_from([email, emails.local_part(email)]))
    flips = data.draw(st.lists(st.booleans(), min_size=len(target), max_size=len(target)))
    variant = "".join(ch.upper() if flip else ch for ch, flip in zip(target, flips, strict=True))

    assert password_policy.violation(variant, email) in (
        Violation.MATCHES_EMAIL,
        Violation.TOO_SHORT,  # a local part under twelve characters fails on length first
    )


# --- Emails -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [("  Ann@Example.COM\t", "ann@example.com"), ("ann@example.com", "ann@example.com")],
)
def test_emails_are_trimmed_and_lower_cased(raw, normalised):
    assert emails.normalise(raw) == normalised


@pytest.mark.parametrize(
    ("email", "valid"),
    [
        ("ann@example.com", True),
        ("a.b+tag@sub.example.co.uk", True),
        ("a" * 242 + "@example.com", True),  # 254 characters
        ("a" * 243 + "@example.com", False),  # 255 characters
        ("", False),
        ("ann.example.com", False),
        ("ann@@example.com", False),
        ("ann@b@example.com", False),
        ("@example.com", False),
        ("ann@localhost", False),
        ("ann@example.", False),
        ("ann@.example.com", False),
        ("ann@example..com", False),
        ("ann lee@example.com", False),
        ("ann@example.com\n", False),
        ("ann\u00a0@example.com", False),  # a no-break space is a space too
    ],
)
def test_email_syntax(email, valid):
    assert (emails.problem(email) is None) == valid
