"""The console in a browser, against the platform `schedctl up` runs: signing in and out,
the layout, the jobs list, and what the browser can and cannot see of a session."""

from __future__ import annotations

import re

import httpx
from console_browser import (
    ADMIN_EMAIL,
    create_job,
    inline_code,
    screenshot,
    sign_in,
)
from playwright.sync_api import BrowserContext, Page, expect

from console_service import security

ACCOUNT_MAX_FAILURES = 5  # the auth service's default (`account.max.failures`)


def test_the_printed_admin_signs_in_and_sees_the_layout(page: Page, platform):
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/sign-in\?next=%2Fjobs$"))
    screenshot(page, "sign-in")
    sign_in(page, ADMIN_EMAIL, platform.admin_password)

    expect(page).to_have_url(re.compile(r"/jobs$"))
    header = page.get_by_role("banner")
    expect(header.get_by_role("link", name="Scheduler console")).to_be_visible()
    expect(header.get_by_text(ADMIN_EMAIL)).to_be_visible()
    expect(header.get_by_role("button", name="Sign out")).to_be_visible()
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Jobs")).to_have_attribute("aria-current", "page")
    # htmx is loaded from the console itself, configured to inject no style and eval nothing
    # (it reads its configuration once the document is loaded).
    page.wait_for_load_state("load")
    assert page.evaluate("htmx.config.includeIndicatorStyles") is False
    assert page.evaluate("document.querySelectorAll('style').length") == 0
    assert page.evaluate("htmx.config.allowEval") is False


def test_a_wrong_password_is_said_so_and_a_locked_login_gives_its_retry_time(page: Page, platform):
    email = platform.register()
    page.goto("/sign-in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    # What was typed stays, but the password does not.
    expect(page.get_by_label("Email")).to_have_value(email)
    expect(page.get_by_label("Password")).to_have_value("")
    screenshot(page, "sign-in-wrong-password")

    for _ in range(ACCOUNT_MAX_FAILURES):
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_text(
        re.compile(r"^Too many failed sign-ins.*Try again in \d+ (seconds|minutes?)\.$")
    )


def test_a_user_sees_their_own_jobs_and_not_another_users(page: Page, platform):
    owner, other = platform.register(), platform.register()
    with platform.client_for(owner) as client:
        create_job(client, "nightly-report")
    with platform.client_for(other) as client:
        create_job(client, "someone-elses-job")

    sign_in(page, owner)
    table = page.get_by_role("table")
    row = table.get_by_role("row").filter(has_text="nightly-report")
    expect(row).to_contain_text("log")
    expect(row).to_contain_text("SCHEDULED")
    expect(table).not_to_contain_text("someone-elses-job")
    screenshot(page, "jobs")


def test_the_jobs_list_pages_with_cursor_links(page: Page, platform):
    email = platform.register()
    with platform.client_for(email) as client:
        for number in range(27):  # the page holds 25
            create_job(client, f"job-{number:02d}")
    sign_in(page, email)
    expect(page.get_by_role("table").get_by_role("row")).to_have_count(26)  # with the header
    page.get_by_role("link", name="Next page").click()
    expect(page.get_by_role("table").get_by_role("row")).to_have_count(3)
    expect(page.get_by_role("link", name="Next page")).to_have_count(0)
    expect(page.get_by_role("link", name="First page")).to_be_visible()


def test_no_page_has_inline_code_and_every_answer_has_the_csp(page: Page, platform):
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text))
    answers = []
    page.on("response", lambda answer: answers.append(answer))

    page.goto("/sign-in")
    html = {"sign-in": page.content()}
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    html["sign-in error"] = page.content()
    sign_in(page, ADMIN_EMAIL, platform.admin_password)
    html["jobs"] = page.content()
    page.goto("/no-such-page")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    html["error"] = page.content()

    for name, text in html.items():
        assert inline_code(text) == [], name
    assert answers
    for answer in answers:
        assert answer.headers["content-security-policy"] == security.CONTENT_SECURITY_POLICY
        assert answer.headers["x-content-type-options"] == "nosniff"
    # Nothing the browser refused under the CSP (htmx injecting a style would be).
    assert [v for v in violations if "Content Security Policy" in v] == []


def test_the_session_is_invisible_to_scripts_and_storage(
    page: Page, context: BrowserContext, platform
):
    sign_in(page, ADMIN_EMAIL, platform.admin_password)
    (cookie,) = [c for c in context.cookies() if c["name"] == "console_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["path"] == "/"

    tokens = platform.session_tokens(cookie["value"])
    seen_by_scripts = page.evaluate(
        """() => [document.cookie, JSON.stringify(localStorage), JSON.stringify(sessionStorage),
                  document.documentElement.outerHTML]"""
    )
    for text in seen_by_scripts:
        assert tokens.access_token not in text
        assert tokens.refresh_token not in text
        assert cookie["value"] not in text
    assert "console_session" not in seen_by_scripts[0]


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(page: Page, platform):
    sign_in(page, ADMIN_EMAIL, platform.admin_password)
    refused = page.request.post("/sign-out", form={"csrf": "forged"}, max_redirects=0)
    assert refused.status == 403
    assert "Nothing was changed" in refused.text()
    page.reload()
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()


def test_sign_out_revokes_and_the_old_cookie_no_longer_works(
    page: Page, context: BrowserContext, browser, platform
):
    email = platform.register()
    sign_in(page, email)
    (old,) = [c for c in context.cookies() if c["name"] == "console_session"]
    tokens = platform.session_tokens(old["value"])

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You signed out.")
    assert [c for c in context.cookies() if c["name"] == "console_session"] == []

    replay = browser.new_context(base_url=platform.console_url)
    try:
        replay.add_cookies([old])
        again = replay.new_page()
        again.goto("/jobs")
        expect(again).to_have_url(re.compile(r"/sign-in\?next=%2Fjobs$"))
    finally:
        replay.close()
    # The refresh token the session held is revoked at the auth service.
    refused = httpx.post(
        f"{platform.endpoints.auth}/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens.refresh_token},
        timeout=10,
    )
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"


def test_keyboard_users_can_skip_to_the_content_on_a_phone_sized_screen(page: Page, platform):
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, ADMIN_EMAIL, platform.admin_password)
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"#main$"))
    # Nothing wider than the screen but the table's own scrolling box.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "jobs-phone")
