"""The console's browser tests: one `schedctl up` platform per module (as tests/system start
it), and Playwright driving Debian's Chromium (`/usr/bin/chromium`, which `make test`
installs; Playwright's own browser download is never used), a fresh context per test.

Fixtures: `platform` (module: the running platform, its admin, `register`, `client_for`),
`browser` (module), `context` and `page` (per test, the console as base URL). Helpers for
signing in, screenshots and HTML checks are in `console_browser.py`.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

# The system tests' `schedctl up` driver, shared rather than copied.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "system"))

from console_browser import CHROMIUM, RunningPlatform
from platform_process import START_DEADLINE_S, Up, free_ports

DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    """`schedctl up` on free ports until the module's tests are done."""
    ports = free_ports()
    up = Up(tmp_path_factory.mktemp("platform"), ports)
    try:
        up.wait_for_line("Press Ctrl-C to stop.", START_DEADLINE_S)
        output = "\n".join(up.seen)
        admin_password = output.split("password: ", 1)[1].split()[0]
        assert f"Open the console: http://127.0.0.1:{ports['console_service']}" in output
        yield RunningPlatform(ports=ports, admin_password=admin_password)
    finally:
        up.stop(signal.SIGTERM)


# Module scope, not session: Playwright's sync API keeps an event loop running on the main
# thread while it is started, and the async tests of the other folders need that thread free.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def context(browser: Browser, platform: RunningPlatform) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=platform.console_url, viewport=DESKTOP)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()
