"""Scope strings (`libs.security.scopes`): parsing, narrowing a request to what is allowed,
roles."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.security import scopes
from libs.security.scopes import InvalidScope

SCOPE_SETS = st.frozensets(st.sampled_from(sorted(scopes.ALL)))


# --- parse ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [None, "", " ", "   "])
def test_no_scope_named_means_none(text):
    assert scopes.parse(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("jobs:read", {"jobs:read"}),
        ("jobs:read jobs:write", {"jobs:read", "jobs:write"}),
        ("users:admin jobs:run jobs:read", {"users:admin", "jobs:run", "jobs:read"}),
        ("jobs:read jobs:read", {"jobs:read"}),
    ],
)
def test_known_scopes_separated_by_single_spaces_are_parsed(text, expected):
    assert scopes.parse(text) == frozenset(expected)


@pytest.mark.parametrize(
    "text",
    [
        "jobs:read  jobs:write",  # two spaces
        " jobs:read",
        "jobs:read ",
        "jobs:read\tjobs:write",
        "jobs:read\njobs:write",
        "jobs:read\n",  # `$` in a regex would let the trailing newline through
        "jobs:read,jobs:write",  # not an RFC 6749 separator: one unknown scope name
    ],
    ids=["double-space", "leading", "trailing", "tab", "newline", "trailing-newline", "comma"],
)
def test_scopes_must_be_separated_by_single_spaces(text):
    with pytest.raises(InvalidScope):
        scopes.parse(text)


@pytest.mark.parametrize(
    "text",
    ['jobs"read', "jobs\\read", "jobs:réad", "jobs:read\x00", "jobs:read\x7f", "jobs:read\n"],
    ids=["quote", "backslash", "non-ascii", "nul", "del", "trailing-newline"],
)
def test_characters_outside_rfc_6749_scope_tokens_are_refused(text):
    with pytest.raises(InvalidScope, match="separated by single spaces"):
        scopes.parse(text)


def test_an_unknown_scope_is_refused_by_name():
    with pytest.raises(InvalidScope, match=r"unknown scope: jobs:delete nodes:drain$"):
        scopes.parse("jobs:read nodes:drain jobs:delete")


@given(SCOPE_SETS.filter(bool))
def test_parse_reads_back_what_render_writes(granted):
    assert scopes.parse(scopes.render(granted)) == granted


# --- narrow -----------------------------------------------------------------------------------


def test_narrowing_nothing_requested_grants_everything_allowed():
    allowed = scopes.for_role("user")

    assert scopes.narrow(None, allowed) == allowed


def test_narrowing_grants_the_requested_scopes_that_are_allowed():
    requested = frozenset({"jobs:read", "users:admin"})

    assert scopes.narrow(requested, scopes.for_role("user")) == {"jobs:read"}


def test_narrowing_to_nothing_is_refused():
    with pytest.raises(InvalidScope, match="none of the requested scopes"):
        scopes.narrow(frozenset({"users:admin"}), scopes.for_role("user"))


def test_narrowing_with_nothing_allowed_is_refused():
    with pytest.raises(InvalidScope):
        scopes.narrow(None, [])


@given(requested=SCOPE_SETS | st.none(), allowed=SCOPE_SETS)
def test_narrowing_never_grants_more_than_allowed_or_requested(requested, allowed):
    expected = allowed if requested is None else requested & allowed
    if not expected:
        with pytest.raises(InvalidScope):
            scopes.narrow(requested, allowed)
        return

    granted = scopes.narrow(requested, allowed)

    assert granted == expected
    assert granted <= allowed
    if requested is not None:
        assert granted <= requested


# --- roles and rendering ----------------------------------------------------------------------


def test_a_user_holds_every_jobs_scope_but_not_users_admin():
    assert scopes.for_role("user") == {"jobs:read", "jobs:write", "jobs:run"}


def test_an_admin_holds_every_scope():
    assert scopes.for_role("admin") == scopes.ALL
    assert scopes.USERS_ADMIN in scopes.for_role("admin")


@pytest.mark.parametrize("role", ["root", "ADMIN", ""])
def test_an_unknown_role_has_no_scopes(role):
    with pytest.raises(ValueError):
        scopes.for_role(role)


def test_render_is_sorted_and_space_separated():
    rendered = scopes.render(["users:admin", "jobs:write", "jobs:read", "jobs:run"])

    assert rendered == "jobs:read jobs:run jobs:write users:admin"


def test_rendering_nothing_is_the_empty_string():
    assert scopes.render([]) == ""
