"""The console's admin pages in a browser, against the platform `schedctl up` runs: the nodes
it started, a user made admin and back, disabled and enabled, unlocked after failed logins, a
service account whose secret is shown once; and nothing of it for a user who is not admin."""

from __future__ import annotations

import re

import pytest
from console_browser import ADMIN_EMAIL, inline_code, screenshot, sign_in
from playwright.sync_api import Locator, Page, expect

from scheduler_client import Client, ClientCredentials
from scheduler_client import errors as api_errors

ACCOUNT_MAX_FAILURES = 5  # the auth service's default (`account.max.failures`)
ADMIN_LINKS = ("Nodes", "Users", "Service accounts")
HEARTBEAT_DEADLINE_MS = 20_000
PHONE = {"width": 375, "height": 740}
REFRESH_DEADLINE_MS = 12_000  # the nodes page polls every 5 s


def _detail(page: Page, term: str) -> Locator:
    """The value of `term` in the page's details list."""
    return page.locator(".details dt", has_text=re.compile(f"^{term}$")).locator("+ dd")


def _no_inline_code(page: Page) -> None:
    assert inline_code(page.content()) == [], page.url


def test_the_admin_sees_the_nodes_up_and_manages_a_user(page: Page, platform):
    email = platform.register()
    sign_in(page, ADMIN_EMAIL, platform.admin_password)
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Nodes").click()

    expect(page.get_by_role("heading", name="Nodes")).to_be_visible()
    table = page.get_by_role("table")
    for service in ("scheduler_service", "executor_service"):
        row = table.get_by_role("row").filter(has_text=service)
        expect(row.locator(".status")).to_have_text("▲ Up", timeout=HEARTBEAT_DEADLINE_MS)
        expect(row).to_contain_text(re.compile(r"\(\d+ s ago\)"))
    _no_inline_code(page)
    screenshot(page, "nodes")
    # The table refreshes itself: the time it is as of moves on.
    as_of = page.locator(".summary time")
    expect(as_of).not_to_have_attribute(
        "datetime", as_of.get_attribute("datetime") or "", timeout=REFRESH_DEADLINE_MS
    )

    nav.get_by_role("link", name="Users").click()
    page.get_by_label("Email starts with").fill(email[:12])
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"/users\?email=user-"))
    row = page.get_by_role("row").filter(has_text=email)
    expect(row).to_contain_text("user")
    screenshot(page, "users")
    row.get_by_role("link", name=email).click()

    expect(page.get_by_role("heading", name=email)).to_be_visible()
    _no_inline_code(page)
    for role in ("admin", "user"):
        page.get_by_label("Role").select_option(role)
        page.get_by_role("button", name="Change role").click()
        expect(page.get_by_role("status")).to_have_text(re.compile("^Role changed"))
        expect(_detail(page, "Role")).to_have_text(role)

    # With JavaScript the confirmation is a dialog on the page; cancelling changes nothing.
    page.get_by_role("link", name="Disable…").click()
    dialog = page.get_by_role("dialog", name=f"Disable {email}?")
    expect(dialog).to_be_visible()
    screenshot(page, "user-disable")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    page.get_by_role("link", name="Disable…").click()
    dialog.get_by_role("button", name="Disable user").click()
    expect(page.get_by_role("status")).to_have_text(re.compile("^User disabled"))
    expect(_detail(page, "Account")).to_have_text("Disabled")
    with pytest.raises(api_errors.ClientError), platform.client_for(email) as client:
        client.login()
    page.get_by_role("button", name="Enable").click()
    expect(page.get_by_role("status")).to_have_text(re.compile("^User enabled"))
    expect(_detail(page, "Account")).to_have_text("Enabled")
    screenshot(page, "user")
    # On a phone-sized screen the page fits its width (the details and actions wrap).
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, "user-phone")
    with platform.client_for(email) as client:
        assert client.users.me().email == email


def test_a_user_locked_by_failed_logins_is_unlocked_from_their_page(page: Page, platform):
    email = platform.register()
    for _ in range(ACCOUNT_MAX_FAILURES):
        with pytest.raises(api_errors.ClientError), platform.client_for(email, "wrong!") as c:
            c.login()
    with pytest.raises(api_errors.LoginLocked), platform.client_for(email) as client:
        client.login()

    sign_in(page, ADMIN_EMAIL, platform.admin_password)
    page.goto("/users")
    page.get_by_label("Locked by failed sign-ins only").check()
    page.get_by_role("button", name="Search").click()
    row = page.get_by_role("row").filter(has_text=email)
    expect(row.get_by_text("Locked")).to_be_visible()
    row.get_by_role("link", name=email).click()

    expect(_detail(page, "Sign-in")).to_contain_text("Locked by failed sign-ins until")
    page.get_by_role("button", name="Unlock").click()
    expect(page.get_by_role("status")).to_have_text(re.compile("^User unlocked"))
    expect(_detail(page, "Sign-in")).to_have_text("Not locked")
    expect(page.get_by_role("button", name="Unlock")).to_have_count(0)
    with platform.client_for(email) as client:
        assert client.users.me().email == email


def _secret_shown(page: Page, heading: str) -> tuple[str, str]:
    expect(page.get_by_role("heading", name=heading)).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("shown only this once")
    return (
        page.get_by_label("Client id").input_value(),
        page.get_by_label("Client secret").input_value(),
    )


def test_a_service_accounts_secret_is_shown_once_and_rotated(page: Page, platform):
    sign_in(page, ADMIN_EMAIL, platform.admin_password)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Service accounts").click()
    page.get_by_role("link", name="New service account").click()
    page.get_by_label("Name").fill("nightly-export")
    page.get_by_label(re.compile("^jobs:read")).check()
    _no_inline_code(page)
    with page.expect_response(re.compile(r"/service-accounts$")) as created:
        page.get_by_role("button", name="Create").click()
    assert created.value.headers["cache-control"] == "no-store"
    client_id, secret = _secret_shown(page, "Service account nightly-export created")
    screenshot(page, "service-account-secret")
    with Client(platform.endpoints, auth=ClientCredentials(client_id, secret)) as client:
        assert client.login().scope == "jobs:read"

    # The address is now the account's: reloading shows the account, not the secret.
    expect(page).to_have_url(re.compile(r"/service-accounts/[0-9a-f-]{36}$"))
    page.reload()
    expect(page.get_by_role("heading", name="nightly-export")).to_be_visible()
    expect(page.get_by_label("Client secret")).to_have_count(0)
    assert secret not in page.content()
    expect(_detail(page, "Client id")).to_have_text(client_id)

    page.get_by_role("link", name="Rotate secret…").click()
    page.get_by_role("dialog").get_by_role("button", name="Rotate secret").click()
    rotated_id, new_secret = _secret_shown(page, "New secret of nightly-export")
    assert rotated_id == client_id and new_secret != secret
    with Client(platform.endpoints, auth=ClientCredentials(client_id, new_secret)) as client:
        client.login()
    with (
        pytest.raises(api_errors.InvalidClient),
        Client(platform.endpoints, auth=ClientCredentials(client_id, secret)) as client,
    ):
        client.login()
    page.go_back()
    assert new_secret not in page.content()

    page.goto("/service-accounts")
    row = page.get_by_role("row").filter(has_text="nightly-export")
    expect(row).to_contain_text(client_id)
    expect(row).to_contain_text("jobs:read")
    expect(row.locator("td").nth(4)).not_to_have_text("never")


def test_a_user_who_is_not_admin_finds_no_admin_page(page: Page, platform):
    sign_in(page, platform.register())
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Jobs")).to_be_visible()
    for label in ADMIN_LINKS:
        expect(nav.get_by_role("link", name=label)).to_have_count(0)
    for path in ("/nodes", "/users", "/service-accounts", "/service-accounts/new"):
        answer = page.goto(path)
        assert answer is not None and answer.status == 404, path
        expect(page.get_by_role("heading", name="Not found")).to_be_visible()
