"""The console's admin pages (nodes, users, service accounts) against the real auth, user and
job services, through a browser without JavaScript: who may see them, what they show, what
their forms change, and that a client secret is shown once only."""

from __future__ import annotations

import re
import uuid

import pytest
from client_support import PASSWORD, running
from console_support import Browser, console, csrf_of

from console_service.pages import admin
from libs.scheduling.states import Role
from scheduler_client import ClientCredentials

ADMIN_PATHS = ("/nodes", "/users", "/service-accounts", "/service-accounts/new")
_SECRET = re.compile(r'id="client-secret" type="text" value="([^"]+)"')
_CLIENT_ID = re.compile(r'id="client-id" type="text" value="([^"]+)"')


@pytest.fixture
def platform(database_url, serve_app):
    with running(database_url, serve_app) as platform:
        yield platform


USER_LINKS = ["Jobs", "Executions", "Dead letters", "Webhook secret"]


def _nav(html: str) -> list[str]:
    nav = html.split('<nav class="site-nav"', 1)[1].split("</nav>", 1)[0]
    return re.findall(r">([^<>]+)</a>", nav)


async def _user_id(browser: Browser, email: str) -> str:
    listed = await browser.http.get("/users", params={"email": email})
    match = re.search(r'href="/users/([0-9a-f-]{36})">' + re.escape(email) + "<", listed.text)
    assert match, f"{email} not listed"
    return match.group(1)


async def test_the_admin_pages_are_admins_only_and_linked_for_admins_only(
    platform, database_url, serve_app
):
    user, boss = platform.account(), platform.account(Role.ADMIN)
    async with console(platform, database_url, serve_app) as url:
        async with Browser(url) as browser:
            await browser.sign_in(user.username, PASSWORD)
            jobs = await browser.http.get("/jobs")
            assert _nav(jobs.text) == USER_LINKS
            someone = await _user_id_as_admin(url, boss.username, user.username)
            for path in (*ADMIN_PATHS, f"/users/{someone}", f"/users/{someone}/disable"):
                answer = await browser.http.get(path)
                assert answer.status_code == 404, path
                assert "There is no such page." in answer.text
            # A form posted with the session's own token is refused alike, and changes nothing.
            token = csrf_of(jobs.text)
            refused = await browser.http.post(
                f"/users/{someone}/role", data={"role": "admin", "csrf": token}
            )
            assert refused.status_code == 404
        async with Browser(url) as browser:
            await browser.sign_in(boss.username, PASSWORD)
            jobs = await browser.http.get("/jobs")
            assert _nav(jobs.text) == [*USER_LINKS, "Nodes", "Users", "Service accounts"]
            shown = await browser.http.get(f"/users/{someone}")
            assert "<dd>user</dd>" in shown.text


async def _user_id_as_admin(url: str, admin_email: str, email: str) -> str:
    async with Browser(url) as browser:
        await browser.sign_in(admin_email, PASSWORD)
        return await _user_id(browser, email)


async def test_nodes_show_each_heartbeat_up_and_refresh_as_a_fragment(
    platform, database_url, serve_app
):
    boss = platform.account(Role.ADMIN)
    platform.add_node("scheduler-7f3a")
    async with console(platform, database_url, serve_app) as url, Browser(url) as browser:
        await browser.sign_in(boss.username, PASSWORD)
        page = await browser.http.get("/nodes")
        assert page.status_code == 200
        assert 'hx-get="/nodes" hx-trigger="every 5s"' in page.text
        row = page.text.split("scheduler-7f3a", 1)[0].rsplit("<tr>", 1)[1]
        assert "Up</span>" in row and "scheduler_service" in row
        assert "1 node: 1 up, 0 down." in page.text
        assert re.search(r"\(\d+ s ago\)", page.text)
        # htmx's poll gets the table alone, not the layout.
        fragment = await browser.http.get("/nodes", headers={"HX-Request": "true"})
        assert "scheduler-7f3a" in fragment.text
        assert "<html" not in fragment.text and 'hx-get="/nodes"' not in fragment.text


async def test_users_are_searched_by_prefix_a_page_at_a_time(
    platform, database_url, serve_app, monkeypatch
):
    boss = platform.account(Role.ADMIN)
    prefix = f"find-{uuid.uuid4().hex[:6]}"
    for n in range(2):
        platform.account(email=f"{prefix}-{n}@example.com")
    platform.account()
    monkeypatch.setattr(admin, "PAGE_SIZE", 1)
    async with console(platform, database_url, serve_app) as url, Browser(url) as browser:
        await browser.sign_in(boss.username, PASSWORD)
        first = await browser.http.get("/users", params={"email": prefix})
        assert f"{prefix}-0@example.com" in first.text
        assert f"{prefix}-1@example.com" not in first.text
        # The next page keeps the search.
        next_link = re.search(r'<a href="([^"]+)" rel="next">', first.text)
        assert next_link
        second = await browser.http.get(next_link.group(1).replace("&amp;", "&"))
        assert f"{prefix}-1@example.com" in second.text
        assert f"{prefix}-0@example.com" not in second.text
        assert 'href="/users?email=' in second.text  # the first page of the same search
        none = await browser.http.get("/users", params={"email": "nobody-here"})
        assert "No users match this search." in none.text


async def test_role_disable_enable_and_the_apis_refusals_on_a_users_page(
    platform, database_url, serve_app
):
    boss, user = platform.account(Role.ADMIN), platform.account()
    async with console(platform, database_url, serve_app) as url, Browser(url) as browser:
        await browser.sign_in(boss.username, PASSWORD)
        user_id = await _user_id(browser, user.username)
        me_id = await _user_id(browser, boss.username)
        page = await browser.http.get(f"/users/{user_id}")
        token = csrf_of(page.text)

        # Without the token: refused, nothing changed.
        forged = await browser.http.post(f"/users/{user_id}/role", data={"role": "admin"})
        assert forged.status_code == 403
        assert "<dd>user</dd>" in (await browser.http.get(f"/users/{user_id}")).text

        made = await browser.http.post(
            f"/users/{user_id}/role", data={"role": "admin", "csrf": token}
        )
        assert made.status_code == 303
        assert made.headers["location"] == f"/users/{user_id}?done=role"
        shown = await browser.http.get(made.headers["location"])
        assert "<dd>admin</dd>" in shown.text and "Role changed." in shown.text

        # The confirmation page without JavaScript: its form posts the disable.
        confirm = await browser.http.get(f"/users/{user_id}/disable")
        assert f"Disable {user.username}?" in confirm.text
        assert f'action="/users/{user_id}/disable"' in confirm.text
        disabled = await browser.http.post(f"/users/{user_id}/disable", data={"csrf": token})
        assert disabled.headers["location"] == f"/users/{user_id}?done=disabled"
        shown = await browser.http.get(disabled.headers["location"])
        assert "Disabled</span>" in shown.text and f'action="/users/{user_id}/enable"' in shown.text
        enabled = await browser.http.post(f"/users/{user_id}/enable", data={"csrf": token})
        shown = await browser.http.get(enabled.headers["location"])
        assert "User enabled." in shown.text and "Disable…" in shown.text

        # The API refuses an admin's own demotion and disabling: its reason, readable.
        for action, data in (("role", {"role": "user"}), ("disable", {})):
            refused = await browser.http.post(
                f"/users/{me_id}/{action}", data={**data, "csrf": token}
            )
            assert refused.status_code == 409
            assert re.search(r'role="alert">Not changed: Another admin must \w+', refused.text)
            assert "{" not in refused.text.split('role="alert">', 1)[1].split("<", 1)[0]
        assert "This is your own account" in refused.text
        unknown = await browser.http.get(f"/users/{uuid.uuid4()}")
        assert unknown.status_code == 404


async def test_a_service_accounts_secret_is_shown_once_on_the_answer_to_its_post(
    platform, database_url, serve_app
):
    boss = platform.account(Role.ADMIN)
    async with console(platform, database_url, serve_app) as url, Browser(url) as browser:
        await browser.sign_in(boss.username, PASSWORD)
        form = await browser.http.get("/service-accounts/new")
        token = csrf_of(form.text)
        for scope in ("jobs:read", "jobs:write", "jobs:run", "users:admin"):
            assert f'name="scope" type="checkbox" value="{scope}"' in form.text

        no_scope = await browser.http.post(
            "/service-accounts", data={"name": "exporter", "csrf": token}
        )
        assert no_scope.status_code == 422
        assert "Choose at least one scope." in no_scope.text
        blank = await browser.http.post(
            "/service-accounts", data={"name": "  ", "scope": ["jobs:read"], "csrf": token}
        )
        assert blank.status_code == 422
        assert 'id="error-name"' in blank.text
        assert 'value="jobs:read" checked' in blank.text  # what was chosen stays chosen

        created = await browser.http.post(
            "/service-accounts",
            data={"name": "exporter", "scope": ["jobs:read", "jobs:run"], "csrf": token},
        )
        assert created.status_code == 200
        assert created.headers["cache-control"] == "no-store"
        secret, client_id = _SECRET.search(created.text)[1], _CLIENT_ID.search(created.text)[1]
        assert "shown only this once" in created.text
        account_id = re.search(
            r'data-replace-url="/service-accounts/([0-9a-f-]{36})"', created.text
        )
        assert account_id
        detail = f"/service-accounts/{account_id[1]}"
        with platform.client(ClientCredentials(client_id, secret)) as client:
            assert client.login().scope == "jobs:read jobs:run"

        # No GET shows it again.
        for path in ("/service-accounts", detail, f"{detail}/rotate", f"{detail}/disable"):
            shown = await browser.http.get(path)
            assert shown.status_code == 200, path
            assert secret not in shown.text, path
        assert "jobs:read jobs:run" in (await browser.http.get(detail)).text

        rotated = await browser.http.post(f"{detail}/rotate", data={"csrf": token})
        assert rotated.status_code == 200 and rotated.headers["cache-control"] == "no-store"
        new_secret = _SECRET.search(rotated.text)[1]
        assert new_secret != secret
        with platform.client(ClientCredentials(client_id, new_secret)) as client:
            client.login()
        assert new_secret not in (await browser.http.get(detail)).text

        disabled = await browser.http.post(f"{detail}/disable", data={"csrf": token})
        assert disabled.headers["location"] == f"{detail}?done=disabled"
        listed = await browser.http.get("/service-accounts")
        assert "Disabled</span>" in listed.text
        enabled = await browser.http.post(f"{detail}/enable", data={"csrf": token})
        assert (
            "Service account enabled." in (await browser.http.get(enabled.headers["location"])).text
        )
