"""The console's job form without a browser (as with JavaScript off): what it sends to the job
service, and how each answer comes back to the person: field errors beside their fields, the
typed values kept, the preview, and an edit that lost a race."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from client_support import PASSWORD, running
from console_support import Browser, console, csrf_of

from console_service.pages import job_form
from tests.browser.console_browser import inline_code

_HIDDEN = re.compile(r'name="(idempotency_key|version)" value="([^"]*)"')
_JOB_URL = re.compile(r"^/jobs/([0-9a-f-]{36})$")


@pytest.fixture
def platform(database_url, serve_app):
    with running(database_url, serve_app) as platform:
        yield platform


def _form(page: str, **values: str) -> dict[str, str]:
    """What a browser posts: the page's hidden fields, a new job's defaults, then `values`."""
    data = {"csrf": csrf_of(page), **job_form.NEW_JOB, "type": "log"}
    data.update(dict(_HIDDEN.findall(page)))
    data.update(values)
    return data


def _slot(page: str, name: str) -> str:
    """The error shown beside the field `name` (empty: none)."""
    match = re.search(rf'id="slot-{name}"[^>]*>(.*?)</div>', page, re.S)
    assert match, f"no error slot for {name}"
    return html.unescape(re.sub(r"<[^>]+>", "", match.group(1)).strip())


def _value(page: str, name: str) -> str:
    match = re.search(rf'<input id="field-{name}" name="{name}" type="[^"]+" value="([^"]*)"', page)
    assert match, f"no input {name}"
    return html.unescape(match.group(1))


def _textarea(page: str, name: str) -> str:
    match = re.search(
        rf'<textarea id="field-{name}" name="{name}"[^>]*>(.*?)</textarea>', page, re.S
    )
    assert match, f"no textarea {name}"
    return html.unescape(match.group(1))


async def _signed_in(browser: Browser, platform) -> object:
    user = platform.account()
    await browser.sign_in(user.username, PASSWORD)
    return user


async def _new_job_form(browser: Browser, platform) -> tuple[object, str]:
    """A new user, signed in, and the new-job page they were given."""
    user = await _signed_in(browser, platform)
    return user, (await browser.http.get("/jobs/new")).text


async def _submit(browser: Browser, page: str, **values: str):
    """The new-job form of `page` sent with `values` (as its button "Create job" does)."""
    return await browser.http.post("/jobs/new", data=_form(page, **values))


async def test_the_new_job_form_offers_the_types_zones_and_payload_help(
    platform, database_url, serve_app
):
    async with console(platform, database_url, serve_app) as url, Browser(url) as browser:
        await _signed_in(browser, platform)
        first = await browser.http.get("/jobs/new")
        second = await browser.http.get("/jobs/new")
        assert first.status_code == 200
        assert inline_code(first.text) == []
        for kind in ("cron", "fixed_rate", "fixed_delay", "calendar", "once"):
            assert f'<option value="{kind}"' in first.text
            assert f'data-shown-when="schedule_kind:{kind}"' in first.text
        for job_type in ("http", "kafka", "log"):
            assert f'<option value="{job_type}"' in first.text
            assert f"Payload fields of type {job_type}" in first.text
        assert '<option value="Europe/Paris">' in first.text
        assert '<option value="localtime">' not in first.text
        assert _value(first.text, "timezone") == "UTC"
        assert 'aria-live="polite"' in first.text
        assert 'hx-trigger="input changed delay:400ms"' in first.text
        # A new key at each rendering: one submission is one job, two forms two jobs.
        keys = [dict(_HIDDEN.findall(page.text))["idempotency_key"] for page in (first, second)]
        assert keys[0] != keys[1]


async def test_a_created_job_holds_what_was_typed_and_a_double_submit_makes_one(
    platform, database_url, serve_app
):
    async with console(platform, database_url, serve_app) as url, Browser(url) as browser:
        user, page = await _new_job_form(browser, platform)
        data = _form(
            page,
            name="nightly report",
            description="Sends the report",
            labels="team: billing\nenv:prod",
            cron_expression="30 1 * * *",
            timezone="Europe/Paris",
            end_at="2035-01-01T00:00",
            rate_interval="not used: the kind is cron",
            payload='{"message": "report", "level": "warning"}',
            retry_max_attempts="5",
            timeout="90",
            misfire_policy="skip",
        )
        created = await browser.http.post("/jobs/new", data=data)
        again = await browser.http.post("/jobs/new", data=data)
        assert created.status_code == again.status_code == 303
        assert created.headers["location"] == again.headers["location"]
        job_id = _JOB_URL.match(created.headers["location"]).group(1)

    async with platform.async_client(user) as client:
        jobs = (await client.jobs.list()).items
        assert [job.id for job in jobs] == [uuid.UUID(job_id)]
        job = jobs[0]
    assert job.name == "nightly report"
    assert job.description == "Sends the report"
    assert job.labels == {"team": "billing", "env": "prod"}
    assert job.schedule.kind == "cron"
    assert job.schedule.expression == "30 1 * * *"
    assert job.schedule.timezone == "Europe/Paris"
    # Typed on Paris's wall clock (UTC+1 in January).
    assert job.schedule.end_at == datetime(2034, 12, 31, 23, 0, tzinfo=UTC)
    assert job.payload == {"message": "report", "level": "warning"}
    assert job.retry_policy.max_attempts == 5
    assert job.timeout_s == 90
    assert job.misfire_policy == "skip"


async def test_refusals_stand_beside_their_fields_and_what_was_typed_stays(
    platform, database_url, serve_app
):
    async with console(platform, database_url, serve_app) as url, Browser(url) as browser:
        user, page = await _new_job_form(browser, platform)
        answer = await _submit(
            browser,
            page,
            name="typo",
            cron_expression="61 * * * *",
            timezone="Europe/Paris",
            payload='{"message": 7}',
        )
        assert answer.status_code == 422
        assert _slot(answer.text, "cron_expression") == "minute 61 is out of range 0-59"
        assert _slot(answer.text, "payload").startswith("payload.message: ")
        assert _slot(answer.text, "name") == ""
        assert _value(answer.text, "name") == "typo"
        assert _value(answer.text, "cron_expression") == "61 * * * *"
        assert _value(answer.text, "timezone") == "Europe/Paris"
        assert _textarea(answer.text, "payload") == '{"message": 7}'
        assert 'aria-invalid="true"' in answer.text
        retry = await _submit(
            browser,
            page,
            name="r",
            cron_expression="0 9 * * *",
            payload='{"message": "m"}',
            retry_max_attempts="0",
        )
        assert retry.status_code == 422
        assert "greater than or equal to 1" in _slot(retry.text, "retry_max_attempts")
        # A new key for the corrected form: the refused one must not be replayed.
        assert (
            dict(_HIDDEN.findall(answer.text))["idempotency_key"]
            != dict(_HIDDEN.findall(page))["idempotency_key"]
        )

        # What the form itself can tell is said before any call.
        answer = await _submit(
            browser,
            page,
            name="broken",
            cron_expression="0 9 * * *",
            payload='{"message": "hi",}',
            labels="team billing",
        )
        assert answer.status_code == 422
        assert _slot(answer.text, "payload").startswith(
            "is not valid JSON: Expecting property name enclosed in double quotes at line 1"
        )
        assert _slot(answer.text, "labels") == "line 1: write each label as key:value"
        assert _textarea(answer.text, "payload") == '{"message": "hi",}'
        assert "The job was not saved" in answer.text
    async with platform.async_client(user) as client:
        assert (await client.jobs.list()).items == []


async def test_the_preview_lists_fire_times_or_puts_the_servers_message_beside_the_field(
    platform, database_url, serve_app
):
    async with console(platform, database_url, serve_app) as url, Browser(url) as browser:
        _, page = await _new_job_form(browser, platform)
        htmx = {"hx-request": "true", "x-csrf-token": csrf_of(page)}

        async def preview(**values: str) -> str:
            answer = await browser.http.post(
                job_form.PREVIEW_PATH, data=_form(page, **values), headers=htmx
            )
            assert answer.status_code == 200
            return answer.text

        fires = await preview(schedule_kind="fixed_rate", rate_interval="3600")
        assert fires.count("<li><time datetime=") == job_form.PREVIEW_COUNT
        assert "<html" not in fires
        assert _slot(fires, "rate_interval") == ""
        assert 'id="slot-rate_interval" hx-swap-oob="true"' in fires

        refused = await preview(cron_expression="0 0 30 2 *")
        assert "<li>" not in refused
        assert _slot(refused, "cron_expression").startswith("never fires")

        zone = await preview(cron_expression="0 9 * * *", timezone="Europe/Pariss")
        assert "unknown time zone 'Europe/Pariss'" in _slot(zone, "timezone")
        assert _slot(zone, "cron_expression") == ""

        empty = await preview(cron_expression="")
        assert "Fill in cron expression to see the next runs." in empty
        # The same list without JavaScript: the Preview button posts the whole form.
        whole = await _submit(
            browser, page, action="preview", name="kept", cron_expression="0 9 * * 1-5"
        )
        assert whole.status_code == 200
        assert whole.text.count("<li><time datetime=") == job_form.PREVIEW_COUNT
        assert _value(whole.text, "name") == "kept"


async def test_a_one_time_job_is_typed_on_the_wall_clock_of_its_zone(
    platform, database_url, serve_app
):
    at = (datetime.now(UTC) + timedelta(days=3)).replace(second=0, microsecond=0)
    wall = at.astimezone(job_form.zoneinfo.ZoneInfo("Asia/Tokyo")).replace(tzinfo=None)
    async with console(platform, database_url, serve_app) as url, Browser(url) as browser:
        user, page = await _new_job_form(browser, platform)
        answer = await _submit(
            browser,
            page,
            name="once",
            schedule_kind="once",
            once_at=wall.isoformat(timespec="minutes"),
            timezone="Asia/Tokyo",
            cron_expression="not read",
            payload='{"message": "once"}',
        )
        assert answer.status_code == 303, _slot(answer.text, "once_at")
    async with platform.async_client(user) as client:
        (job,) = (await client.jobs.list()).items
    assert job.schedule.kind == "once"
    assert job.schedule.at == at
    assert job.next_run_at == at


async def test_an_edit_that_lost_a_race_is_explained_and_can_overwrite(
    platform, database_url, serve_app
):
    async with console(platform, database_url, serve_app) as url, Browser(url) as browser:
        user = await _signed_in(browser, platform)
        async with platform.async_client(user) as client:
            job = await client.jobs.create(
                {
                    "name": "report",
                    "type": "log",
                    "payload": {"message": "report"},
                    "schedule": {"kind": "calendar", "every": 1, "unit": "months"},
                    "labels": {"team": "billing"},
                }
            )
            page = (await browser.http.get(f"/jobs/{job.id}/edit")).text
            assert _value(page, "name") == "report"
            assert _value(page, "calendar_every") == "1"
            assert 'value="months" selected' in page
            assert _textarea(page, "labels") == "team: billing"
            assert dict(_HIDDEN.findall(page)) == {"version": "1"}
            # Someone else renames it meanwhile.
            await client.jobs.update(job.id, {"name": "monthly report"}, if_match=1)

            mine = _form(
                page,
                **{
                    "name": "report v2",
                    "schedule_kind": "calendar",
                    "calendar_every": "2",
                    "calendar_unit": "months",
                    "payload": '{"message": "report"}',
                    "labels": "team: billing",
                },
            )
            mine.pop("idempotency_key", None)
            conflict = await browser.http.post(f"/jobs/{job.id}/edit", data=mine)
            assert conflict.status_code == 409
            text = html.unescape(conflict.text)
            assert (
                "This job was changed by someone else since you opened it (now version 2)" in text
            )
            assert re.search(
                r"<th scope=\"row\">Name</th><td><pre[^>]*>monthly report</pre>"
                r"</td><td><pre[^>]*>report v2</pre>",
                text,
            )
            assert '<th scope="row">Every</th>' in text
            assert '<th scope="row">Labels</th>' not in text
            assert _value(conflict.text, "name") == "report v2"
            assert dict(_HIDDEN.findall(conflict.text)) == {"version": "2"}
            assert "Overwrite version 2" in conflict.text
            assert (await client.jobs.get(job.id)).name == "monthly report"

            mine["version"] = "2"
            saved = await browser.http.post(f"/jobs/{job.id}/edit", data=mine)
            assert saved.status_code == 303
            assert saved.headers["location"] == f"/jobs/{job.id}"
            now = await client.jobs.get(job.id)
    assert now.name == "report v2"
    assert now.schedule.every == 2
    assert now.version == 3
