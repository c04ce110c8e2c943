"""The console's history and webhook secret pages in a browser, against `schedctl up`: an
execution appearing by itself, filters and the detail; a job failing for good, its dead letter
replayed from the page; another user seeing none of it; the webhook secret shown and rotated.
(The many smaller checks, JavaScript off, are in tests/integration/test_console_history.py.)"""

from __future__ import annotations

import re
import socket

from console_browser import inline_code, screenshot, sign_in
from platform_process import eventually
from playwright.sync_api import Page, expect

DEAD_LETTER_DEADLINE_S = 30


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _no_csp_violations(page: Page) -> list[str]:
    seen: list[str] = []
    page.on("console", lambda message: seen.append(message.text))
    return seen


def test_an_execution_appears_by_itself_filters_and_opens(page: Page, platform):
    violations = _no_csp_violations(page)
    email = platform.register()
    sign_in(page, email)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Executions").click()
    expect(page.get_by_role("heading", name="Executions")).to_be_visible()
    expect(page.get_by_text("No executions yet.")).to_be_visible()

    with platform.client_for(email) as client:
        job = client.jobs.create(
            {
                "name": "hello-now",
                "type": "log",
                "payload": {"message": "hello"},
                "schedule": {"kind": "once"},
            }
        )
    # No reload: the table refreshes itself.
    row = page.get_by_role("row").filter(has_text="hello-now")
    expect(row).to_contain_text("SUCCEEDED", timeout=20_000)
    expect(row.get_by_role("link", name="hello-now", exact=True)).to_have_attribute(
        "href", f"/jobs/{job.id}"
    )
    assert inline_code(page.content()) == []
    screenshot(page, "executions")

    page.get_by_role("checkbox", name="FAILED").check()
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"/executions\?.*status=FAILED"))
    expect(page.get_by_text("No executions match these filters.")).to_be_visible()
    page.get_by_role("checkbox", name="FAILED").uncheck()
    page.get_by_role("checkbox", name="SUCCEEDED").check()
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("checkbox", name="SUCCEEDED")).to_be_checked()
    row.get_by_role("link", name=re.compile(r"^Execution of hello-now")).click()

    expect(page.get_by_role("heading", name="Execution of hello-now")).to_be_visible()
    details = page.locator("dl.details")
    expect(details).to_contain_text("SUCCEEDED")
    expect(details).to_contain_text("log")
    expect(page.get_by_text("No error.")).to_be_visible()
    assert inline_code(page.content()) == []

    # On a phone-sized screen nothing is wider than the screen but the table's own box.
    page.set_viewport_size({"width": 390, "height": 844})
    for path in (f"/executions/{page.url.rsplit('/', 1)[1]}", "/executions"):
        page.goto(path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
    assert [v for v in violations if "Content Security Policy" in v] == []


def test_a_dead_letter_is_replayed_from_the_page_and_others_see_none_of_it(
    page: Page, browser, platform
):
    violations = _no_csp_violations(page)
    email = platform.register()
    with platform.client_for(email) as client:
        job = client.jobs.create(
            {
                "name": "unreachable-hook",
                "type": "http",
                "payload": {"url": f"http://127.0.0.1:{_closed_port()}/"},
                "schedule": {"kind": "once"},
                "retryPolicy": {"maxAttempts": 1},
            }
        )
        letters = eventually(
            lambda: client.dead_letters.list(job_id=job.id).items, DEAD_LETTER_DEADLINE_S
        )
    (letter,) = letters

    sign_in(page, email)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dead letters").click()
    row = page.locator(f"#dead-letter-{letter.id}")
    expect(row.get_by_role("link", name="unreachable-hook", exact=True)).to_be_visible()
    expect(row).to_contain_text("No")
    assert inline_code(page.content()) == []
    screenshot(page, "dead-letters")

    row.get_by_role("link", name="Replay unreachable-hook").click()
    dialog = page.get_by_role("dialog", name="Replay unreachable-hook?")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    row.get_by_role("link", name="Replay unreachable-hook").click()
    dialog.get_by_role("button", name="Replay").click()

    expect(page.get_by_role("status")).to_contain_text("Replayed: the job is due now")
    expect(row).to_contain_text("Replayed")
    expect(row.get_by_role("link", name=re.compile("^Replay"))).to_have_count(0)
    assert [v for v in violations if "Content Security Policy" in v] == []

    other = browser.new_context(base_url=platform.console_url)
    try:
        stranger = other.new_page()
        sign_in(stranger, platform.register())
        stranger.goto("/executions")
        expect(stranger.get_by_text("No executions yet.")).to_be_visible()
        stranger.goto("/dead-letters")
        expect(stranger.get_by_text("No dead letters.")).to_be_visible()
        expect(stranger.locator("main")).not_to_contain_text("unreachable-hook")
    finally:
        other.close()


def test_the_webhook_secret_appears_only_when_asked_and_rotates(page: Page, platform):
    email = platform.register()
    with platform.client_for(email) as client:
        secret = client.webhook_secret.get().secret
    sign_in(page, email)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Webhook secret").click()
    expect(page.get_by_role("heading", name="Webhook secret")).to_be_visible()
    assert secret not in page.content()
    assert inline_code(page.content()) == []
    screenshot(page, "webhook-secret")

    page.get_by_role("button", name="Show my secret").click()
    expect(page.get_by_label(re.compile("^Secret"))).to_have_value(secret)

    page.get_by_role("link", name="Rotate the secret…").click()
    dialog = page.get_by_role("dialog", name="Rotate the webhook secret?")
    expect(dialog.get_by_role("radio", name=re.compile("^A day"))).to_be_checked()
    dialog.get_by_role("button", name="Rotate the secret").click()

    expect(page.get_by_role("heading", name="Your new secret")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("keeps signing, beside the new one, until")
    with platform.client_for(email) as client:
        rotated = client.webhook_secret.get()
    assert rotated.secret != secret
    expect(page.get_by_label(re.compile("^Secret"))).to_have_value(rotated.secret)
