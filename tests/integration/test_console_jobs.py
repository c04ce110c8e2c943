"""The console's jobs pages without a browser (httpx, no JavaScript), against the real auth,
user and job services: the list's filters, words, outcomes and pages; a job's page; its
actions with CSRF and versions; confirmation pages; what another account and a narrower
session see."""

from __future__ import annotations

import hashlib
import re
import uuid
from html import unescape

import pytest
from client_support import PASSWORD, running
from console_support import Browser, console, csrf_of
from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from libs.infra import db
from libs.store import models

HOURLY = {"kind": "fixed_rate", "intervalSeconds": 3600}
NIGHTLY = {"kind": "cron", "expression": "30 1 * * *", "timezone": "Europe/London"}


@pytest.fixture
def platform(database_url, serve_app):
    with running(database_url, serve_app) as platform:
        yield platform


def _job(name: str, schedule=HOURLY, **fields):
    return {
        "name": name,
        "type": "log",
        "payload": {"message": name},
        "schedule": schedule,
        **fields,
    }


def _text(html: str) -> str:
    """The page's text, tags dropped and spaces collapsed, for assertions about words."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def _rows(html: str) -> list[str]:
    return [_text(row) for row in re.findall(r"<tr>(.*?)</tr>", html, re.S)[1:]]


async def _signed_in(url: str, user) -> Browser:
    browser = Browser(url)
    answer = await browser.sign_in(user.username, PASSWORD)
    assert answer.status_code == 303
    return browser


async def test_the_list_filters_describes_and_shows_last_outcomes(
    platform, database_url, serve_app
):
    user = platform.account()
    with platform.client(auth=user) as client:
        nightly = client.jobs.create(_job("nightly-report", NIGHTLY, labels={"team": "billing"}))
        hourly = client.jobs.create(_job("hourly-sync"))
        paused = client.jobs.create(_job("nightly-paused"))
        client.jobs.pause(paused.id)
    platform.add_execution(nightly.id, status="FAILED", attempt=1)
    platform.add_execution(nightly.id, status="SUCCEEDED", attempt=2)  # the newest

    async with (
        console(platform, database_url, serve_app) as url,
        await _signed_in(url, user) as browser,
    ):
        page = await browser.http.get("/jobs")
        assert page.status_code == 200
        rows = {row.split()[0]: row for row in _rows(page.text)}
        assert set(rows) == {"nightly-report", "hourly-sync", "nightly-paused"}
        assert "At 01:30 AM, every day (Europe/London)" in rows["nightly-report"]
        assert "Every hour" in rows["hourly-sync"]
        assert "SUCCEEDED" in rows["nightly-report"] and "attempt 2" in rows["nightly-report"]
        assert "never" in rows["hourly-sync"]
        assert f'href="/jobs/{nightly.id}"' in page.text
        assert 'href="/jobs/new"' in page.text

        # Status (several), name prefix, label and type; the form shows what was chosen.
        only_paused = await browser.http.get("/jobs", params={"status": "PAUSED"})
        assert [r.split()[0] for r in _rows(only_paused.text)] == ["nightly-paused"]
        assert 'value="PAUSED" checked' in only_paused.text
        both = await browser.http.get(
            "/jobs", params=[("status", "PAUSED"), ("status", "SCHEDULED"), ("name", "nightly")]
        )
        assert sorted(r.split()[0] for r in _rows(both.text)) == [
            "nightly-paused",
            "nightly-report",
        ]
        labelled = await browser.http.get("/jobs", params={"label": "team:billing"})
        assert [r.split()[0] for r in _rows(labelled.text)] == ["nightly-report"]
        none = await browser.http.get("/jobs", params={"type": "http"})
        assert "No jobs match these filters." in none.text
        # Empty fields of a submitted form are no filters; a sort orders by next run.
        blank = await browser.http.get(
            "/jobs", params={"type": "", "label": "", "name": "", "sort": "nextRunAt"}
        )
        assert len(_rows(blank.text)) == 3
        assert '<option value="nextRunAt" selected>' in blank.text

        # A label that is not key:value is explained, not sent.
        bad = await browser.http.get("/jobs", params={"label": "billing"})
        assert bad.status_code == 200
        assert "Write a label as key:value" in bad.text

        # htmx gets the table alone, whose refresh keeps the filters.
        fragment = await browser.http.get(
            "/jobs", params={"status": "PAUSED", "name": "nightly"}, headers={"hx-request": "true"}
        )
        assert "<html" not in fragment.text and "<form" not in fragment.text
        assert 'hx-get="/jobs?status=PAUSED&amp;name=nightly"' in fragment.text
        assert 'hx-trigger="every 15s"' in fragment.text
    assert hourly.status == "SCHEDULED"


async def test_pages_of_the_list_keep_the_filters(platform, database_url, serve_app):
    user = platform.account()
    with platform.client(auth=user) as client:
        client.jobs.create_many([_job(f"batch-{n:02}") for n in range(27)] + [_job("other")])
    async with (
        console(platform, database_url, serve_app) as url,
        await _signed_in(url, user) as browser,
    ):
        first = await browser.http.get("/jobs", params={"name": "batch-"})
        assert len(_rows(first.text)) == 25
        (next_link,) = re.findall(r'href="(/jobs\?[^"]*)" rel="next"', first.text)
        next_link = unescape(next_link)
        assert "name=batch-" in next_link and "cursor=" in next_link
        second = await browser.http.get(next_link)
        names = [r.split()[0] for r in _rows(first.text) + _rows(second.text)]
        assert sorted(names) == [f"batch-{n:02}" for n in range(27)]
        assert 'href="/jobs?name=batch-">First page</a>' in second.text
        assert 'rel="next"' not in second.text


async def test_a_job_page_shows_its_definition_fire_times_and_executions(
    platform, database_url, serve_app
):
    user, other = platform.account(), platform.account()
    with platform.client(auth=user) as client:
        job = client.jobs.create(
            _job(
                "nightly-report",
                NIGHTLY,
                description="The report of the day",
                labels={"team": "billing"},
                retryPolicy={"maxAttempts": 5},
                timeoutSeconds=120,
            )
        )
    platform.add_execution(job.id, status="FAILED")

    async with (
        console(platform, database_url, serve_app) as url,
        await _signed_in(url, user) as browser,
    ):
        page = await browser.http.get(f"/jobs/{job.id}")
        assert page.status_code == 200
        text = _text(page.text)
        for words in (
            "The report of the day",
            "team: billing",
            "up to 5 attempts",
            "Timeout 120 s",
            "At 01:30 AM, every day (Europe/London)",
            "Version 1",
            '"message": "nightly-report"',
        ):
            assert words in text, words
        assert len(re.findall(r"<li><time", page.text)) == 10
        assert "FAILED" in _text(page.text.split('id="executions"')[1])
        assert f'hx-get="/jobs/{job.id}/executions" hx-trigger="every 3s"' in page.text
        # What a SCHEDULED job allows, each form with the version shown.
        for action in ("run", "pause"):
            assert f'action="/jobs/{job.id}/{action}"' in page.text
        assert f'action="/jobs/{job.id}/resume"' not in page.text
        assert f'href="/jobs/{job.id}/edit"' in page.text
        assert f'href="/jobs/{job.id}/cancel" data-confirm-dialog="confirm-cancel"' in page.text
        assert page.text.count('name="version" value="1"') >= 4

        executions = await browser.http.get(
            f"/jobs/{job.id}/executions", headers={"hx-request": "true"}
        )
        assert "<html" not in executions.text and "FAILED" in executions.text

        for missing in (f"/jobs/{uuid.uuid4()}", "/jobs/not-an-id", f"/jobs/{uuid.uuid4()}/cancel"):
            answer = await browser.http.get(missing)
            assert answer.status_code == 404, missing
            assert "Not found" in answer.text

    async with (
        console(platform, database_url, serve_app) as url,
        await _signed_in(url, other) as browser,
    ):
        for path in (f"/jobs/{job.id}", f"/jobs/{job.id}/executions", f"/jobs/{job.id}/delete"):
            assert (await browser.http.get(path)).status_code == 404
        page = await browser.http.get("/jobs")
        token = csrf_of(page.text)
        refused = await browser.http.post(
            f"/jobs/{job.id}/pause", data={"csrf": token, "version": "1"}
        )
        assert refused.status_code == 404
    with platform.client(auth=user) as client:
        assert client.jobs.get(job.id).status == "SCHEDULED"


async def test_actions_need_the_token_and_the_version_and_say_what_they_did(
    platform, database_url, serve_app
):
    user = platform.account()
    with platform.client(auth=user) as client:
        job = client.jobs.create(_job("hourly-sync"))
        async with (
            console(platform, database_url, serve_app) as url,
            await _signed_in(url, user) as browser,
        ):
            page = await browser.http.get(f"/jobs/{job.id}")
            token = csrf_of(page.text)

            # Without the CSRF token: refused, nothing changed.
            forged = await browser.http.post(f"/jobs/{job.id}/pause", data={"version": "1"})
            assert forged.status_code == 403
            assert client.jobs.get(job.id).status == "SCHEDULED"

            pause = await browser.http.post(
                f"/jobs/{job.id}/pause", data={"csrf": token, "version": "1"}
            )
            assert pause.status_code == 303
            assert pause.headers["location"] == f"/jobs/{job.id}?notice=paused"
            assert client.jobs.get(job.id).status == "PAUSED"
            paused = await browser.http.get(pause.headers["location"])
            assert "The job is paused" in paused.text
            assert f'action="/jobs/{job.id}/resume"' in paused.text
            assert f'action="/jobs/{job.id}/pause"' not in paused.text
            assert "these are the times it would run once resumed" in paused.text

            # The page shown said version 1; the job is at 2 now: explained, not applied.
            stale = await browser.http.post(
                f"/jobs/{job.id}/resume", data={"csrf": token, "version": "1"}
            )
            assert stale.status_code == 409
            assert "The job changed since you loaded this page" in stale.text
            assert f'<a href="/jobs/{job.id}">Reload the job</a>' in stale.text
            assert client.jobs.get(job.id).status == "PAUSED"

            resume = await browser.http.post(
                f"/jobs/{job.id}/resume", data={"csrf": token, "version": "2"}
            )
            assert resume.headers["location"] == f"/jobs/{job.id}?notice=resumed"
            run = await browser.http.post(
                f"/jobs/{job.id}/run", data={"csrf": token, "version": "3"}
            )
            assert run.headers["location"] == f"/jobs/{job.id}?notice=run"

            # Cancel asks first: a page holding the POST form, with the version to send.
            current = client.jobs.get(job.id)
            confirm = await browser.http.get(f"/jobs/{job.id}/cancel")
            assert confirm.status_code == 200
            assert "Cancel this job?" in confirm.text
            assert f'action="/jobs/{job.id}/cancel"' in confirm.text
            assert f'name="version" value="{current.version}"' in confirm.text
            assert 'formmethod="dialog"' not in confirm.text  # no dialog to close here
            cancel = await browser.http.post(
                f"/jobs/{job.id}/cancel", data={"csrf": token, "version": str(current.version)}
            )
            assert cancel.headers["location"] == f"/jobs/{job.id}?notice=cancelled"
            cancelled = await browser.http.get(f"/jobs/{job.id}")
            assert "A CANCELLED job does not run again." in cancelled.text
            for gone in ("run", "pause", "resume", "edit"):
                assert f"/jobs/{job.id}/{gone}" not in cancelled.text
            # An action its status no longer allows is explained.
            again = await browser.http.post(
                f"/jobs/{job.id}/pause",
                data={"csrf": token, "version": str(current.version + 1)},
            )
            assert again.status_code == 409
            assert "Not possible now" in again.text

            confirm = await browser.http.get(f"/jobs/{job.id}/delete")
            assert "Delete this job?" in confirm.text
            version = client.jobs.get(job.id).version
            delete = await browser.http.post(
                f"/jobs/{job.id}/delete", data={"csrf": token, "version": str(version)}
            )
            assert delete.headers["location"] == "/jobs?notice=deleted"
            listed = await browser.http.get(delete.headers["location"])
            assert "The job was deleted." in listed.text
            assert "hourly-sync" not in listed.text
            assert (await browser.http.get(f"/jobs/{job.id}")).status_code == 404


async def test_a_session_without_a_scope_sees_no_action_of_it(platform, database_url, serve_app):
    user = platform.account()
    with platform.client(auth=user) as client:
        job = client.jobs.create(_job("read-only"))
    engine = create_async_engine(db.async_url(database_url), poolclass=NullPool)
    try:
        async with (
            console(platform, database_url, serve_app) as url,
            await _signed_in(url, user) as browser,
        ):
            async with engine.begin() as conn:
                await conn.execute(
                    update(models.ConsoleSession)
                    .where(
                        models.ConsoleSession.key_hash == hashlib.sha256(browser.secret).digest()
                    )
                    .values(scopes=["jobs:read"])
                )
            page = await browser.http.get(f"/jobs/{job.id}")
            assert page.status_code == 200
            assert 'class="job-actions"' not in page.text
            listed = await browser.http.get("/jobs")
            assert 'href="/jobs/new"' not in listed.text
            token = csrf_of(listed.text)
            for action in ("run", "pause", "delete"):
                refused = await browser.http.post(
                    f"/jobs/{job.id}/{action}", data={"csrf": token, "version": "1"}
                )
                assert refused.status_code == 404, action
            assert (await browser.http.get(f"/jobs/{job.id}/delete")).status_code == 404
    finally:
        await engine.dispose()
    with platform.client(auth=user) as client:
        assert client.jobs.get(job.id).version == 1
