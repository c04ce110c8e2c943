"""The console's executions, dead letters and webhook secret pages against the real auth, user
and job services, as a browser without JavaScript uses them (the httpx `Browser`): filters,
pages, the detail, replays and their refusals, and where the secret may and may not appear."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from client_support import PASSWORD, log_job, running
from console_support import Browser, console, csrf_of
from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from libs.infra import db
from libs.security import scopes
from libs.store import models

T0 = datetime(2030, 1, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def platform(database_url, serve_app):
    with running(database_url, serve_app) as platform:
        yield platform


async def _narrow_session(database_url: str, browser: Browser, held: set[str]) -> None:
    """Give the browser's console session only the scopes `held` (as a token with fewer
    scopes would)."""
    engine = create_async_engine(db.async_url(database_url), poolclass=NullPool)
    try:
        async with db.session_factory(engine)() as session, session.begin():
            await session.execute(
                update(models.ConsoleSession)
                .where(models.ConsoleSession.key_hash == hashlib.sha256(browser.secret).digest())
                .values(scopes=sorted(held))
            )
    finally:
        await engine.dispose()


def _execution(platform, job_id, *, status, minutes, error=None) -> uuid.UUID:
    created = T0 + timedelta(minutes=minutes)
    row = models.Execution(
        job_id=job_id,
        scheduled_for=created,
        attempt=1,
        lease_version=1,
        status=status,
        worker="executor-1" if status != "DISPATCHED" else None,
        dispatched_at=created,
        started_at=created + timedelta(seconds=1) if status != "DISPATCHED" else None,
        finished_at=created + timedelta(seconds=3.5) if status not in ("DISPATCHED",) else None,
        error_kind="http_5xx" if error else None,
        error=error,
        created_at=created,
    )
    platform._add(row)
    return row.id


def _rows(html: str, table_id_prefix: str) -> list[str]:
    return re.findall(rf'<tr id="{table_id_prefix}-([0-9a-f-]+)"', html)


async def test_executions_filter_page_and_show_one_in_full(platform, database_url, serve_app):
    owner, other = platform.account(), platform.account()
    with platform.client(owner) as client:
        alpha = client.jobs.create(log_job(name="alpha"))
        beta = client.jobs.create(log_job(name="beta"))
        gone = client.jobs.create(log_job(name="gone-job"))
    long_error = "HTTP 503 from the target: <b>" + "x" * 200 + " END-OF-ERROR"
    ok = _execution(platform, alpha.id, status="SUCCEEDED", minutes=0)
    failed = _execution(platform, alpha.id, status="FAILED", minutes=60, error=long_error)
    running_now = _execution(platform, beta.id, status="RUNNING", minutes=120)
    orphan = _execution(platform, gone.id, status="SUCCEEDED", minutes=180)
    with platform.client(owner) as client:
        client.jobs.delete(gone.id)

    async with console(platform, database_url, serve_app) as url, Browser(url) as browser:
        await browser.sign_in(owner.username, PASSWORD)
        listed = await browser.http.get("/executions")
        assert listed.status_code == 200
        assert _rows(listed.text, "execution") == [
            str(orphan),
            str(running_now),
            str(failed),
            str(ok),
        ]
        assert f'<a href="/jobs/{alpha.id}">alpha</a>' in listed.text
        assert f"/jobs/{gone.id}" not in listed.text  # a deleted job is not linked
        assert 'gone-job <span class="muted">(deleted)</span>' in listed.text
        assert "END-OF-ERROR" not in listed.text  # the summary is shortened
        assert "&lt;b&gt;" in listed.text and "<b>" not in listed.text
        assert "2.500 s" in listed.text  # started to finished
        assert 'hx-trigger="every 5s"' in listed.text
        assert 'type="datetime-local"' in listed.text and "Times are UTC." in listed.text

        by_status = await browser.http.get(
            "/executions", params=[("status", "FAILED"), ("status", "RUNNING")]
        )
        assert _rows(by_status.text, "execution") == [str(running_now), str(failed)]
        by_job = await browser.http.get("/executions", params={"job": str(alpha.id)})
        assert _rows(by_job.text, "execution") == [str(failed), str(ok)]
        assert f'<option value="{alpha.id}" selected>alpha</option>' in by_job.text
        by_time = await browser.http.get(
            "/executions", params={"after": "2030-01-01T11:00", "before": "2030-01-01T13:00:00"}
        )
        assert _rows(by_time.text, "execution") == [str(running_now), str(failed)]
        backwards = await browser.http.get(
            "/executions", params={"after": "2030-01-02T00:00", "before": "2030-01-01T00:00"}
        )
        assert backwards.status_code == 400
        assert "Must be later than" in backwards.text
        nonsense = await browser.http.get("/executions", params={"after": "yesterday"})
        assert nonsense.status_code == 400
        assert "Enter a date and time" in nonsense.text

        # htmx's refresh gets the table alone, with the same filters.
        fragment = await browser.http.get(
            "/executions", params={"status": "FAILED"}, headers={"hx-request": "true"}
        )
        assert "<html" not in fragment.text
        assert _rows(fragment.text, "execution") == [str(failed)]

        detail = await browser.http.get(f"/executions/{failed}")
        assert detail.status_code == 200
        assert '<pre class="error-text">HTTP 503 from the target: &lt;b&gt;' in detail.text
        assert "END-OF-ERROR</pre>" in detail.text
        for shown in ("executor-1", "http_5xx", "FAILED", str(alpha.id), "2030-01-01 11:00:00"):
            assert shown in detail.text
        assert (await browser.http.get("/executions/not-an-id")).status_code == 404

    async with console(platform, database_url, serve_app) as url, Browser(url) as browser:
        await browser.sign_in(other.username, PASSWORD)
        assert _rows((await browser.http.get("/executions")).text, "execution") == []
        assert (await browser.http.get(f"/executions/{failed}")).status_code == 404


async def test_executions_pages_keep_their_filters(platform, database_url, serve_app):
    owner = platform.account()
    with platform.client(owner) as client:
        job = client.jobs.create(log_job(name="busy"))
    for minute in range(27):
        _execution(platform, job.id, status="SUCCEEDED", minutes=minute)
    _execution(platform, job.id, status="FAILED", minutes=100)
    async with console(platform, database_url, serve_app) as url, Browser(url) as browser:
        await browser.sign_in(owner.username, PASSWORD)
        first = await browser.http.get("/executions", params={"status": "SUCCEEDED"})
        assert len(_rows(first.text, "execution")) == 25
        (next_href,) = re.findall(r'<a href="([^"]+)" rel="next">', first.text)
        next_href = next_href.replace("&amp;", "&")
        assert "status=SUCCEEDED" in next_href and "cursor=" in next_href
        second = await browser.http.get(next_href)
        assert len(_rows(second.text, "execution")) == 2
        assert 'rel="next"' not in second.text
        assert '<a href="/executions?status=SUCCEEDED">First page</a>' in second.text
        # The refresh of the second page asks for the second page.
        assert f'hx-get="{next_href.replace("&", "&amp;")}"' in second.text


async def test_dead_letters_replay_with_a_confirmation_page_and_refusals(
    platform, database_url, serve_app
):
    owner, other = platform.account(), platform.account()
    with platform.client(owner) as client:
        job = client.jobs.create(log_job(name="flaky"))
        paused = client.jobs.create(log_job(name="paused-job"))
    letter = platform.add_dead_letter(job)
    paused_letter = platform.add_dead_letter(paused)
    with platform.client(owner) as client:
        client.jobs.pause(paused.id)

    async with console(platform, database_url, serve_app) as url, Browser(url) as browser:
        await browser.sign_in(owner.username, PASSWORD)
        listed = await browser.http.get("/dead-letters")
        assert _rows(listed.text, "dead-letter") == [str(paused_letter), str(letter)]
        assert f'<a href="/jobs/{job.id}">flaky</a>' in listed.text  # named from its job
        assert "retries_exhausted" in listed.text and "HTTP 503" in listed.text
        replay_href = f"/dead-letters/{letter}/replay?job={job.id}"
        assert f'href="{replay_href}"' in listed.text

        confirm = await browser.http.get(replay_href)
        assert confirm.status_code == 200
        assert "Replay flaky?" in confirm.text
        assert f'action="/dead-letters/{letter}/replay"' in confirm.text
        token = csrf_of(confirm.text)

        forged = await browser.http.post(f"/dead-letters/{letter}/replay", data={"csrf": "x"})
        assert forged.status_code == 403
        with platform.client(owner) as client:
            assert client.dead_letters.list(replayed=True).items == []

        done = await browser.http.post(f"/dead-letters/{letter}/replay", data={"csrf": token})
        assert done.status_code == 303
        assert done.headers["location"] == "/dead-letters?notice=replayed"
        after = await browser.http.get(done.headers["location"])
        assert "Replayed: the job is due now" in after.text
        row = after.text.split(f'id="dead-letter-{letter}"', 1)[1].split("</tr>", 1)[0]
        assert "status-replayed" in row and "Replay…" not in row

        again = await browser.http.post(f"/dead-letters/{letter}/replay", data={"csrf": token})
        assert again.status_code == 409
        assert "already replayed, so nothing was run again" in again.text
        conflict = await browser.http.post(
            f"/dead-letters/{paused_letter}/replay", data={"csrf": token}
        )
        assert conflict.status_code == 409
        assert "The job is PAUSED now" in conflict.text
        assert '"currentStatus"' not in conflict.text  # never raw JSON

        replayed = await browser.http.get("/dead-letters", params={"replayed": "yes"})
        assert _rows(replayed.text, "dead-letter") == [str(letter)]
        waiting = await browser.http.get("/dead-letters", params={"replayed": "no"})
        assert _rows(waiting.text, "dead-letter") == [str(paused_letter)]
        one_job = await browser.http.get("/dead-letters", params={"job": str(paused.id)})
        assert _rows(one_job.text, "dead-letter") == [str(paused_letter)]

        # Without jobs:run the action is neither shown nor accepted.
        await _narrow_session(database_url, browser, {scopes.JOBS_READ, scopes.JOBS_WRITE})
        reader = await browser.http.get("/dead-letters")
        assert _rows(reader.text, "dead-letter") == [str(paused_letter), str(letter)]
        assert "Replay…" not in reader.text and "replay-dialog" not in reader.text
        assert (await browser.http.get(f"/dead-letters/{paused_letter}/replay")).status_code == 404
        refused = await browser.http.post(
            f"/dead-letters/{paused_letter}/replay", data={"csrf": token}
        )
        assert refused.status_code == 404

    async with console(platform, database_url, serve_app) as url, Browser(url) as browser:
        await browser.sign_in(other.username, PASSWORD)
        assert _rows((await browser.http.get("/dead-letters")).text, "dead-letter") == []
        page = await browser.http.get("/dead-letters")
        answer = await browser.http.post(
            f"/dead-letters/{paused_letter}/replay", data={"csrf": csrf_of(page.text)}
        )
        assert answer.status_code == 404


async def test_the_webhook_secret_is_shown_only_in_answer_to_a_post(
    platform, database_url, serve_app
):
    owner = platform.account()
    with platform.client(owner) as client:
        secret = client.webhook_secret.get().secret

    async with console(platform, database_url, serve_app) as url, Browser(url) as browser:
        await browser.sign_in(owner.username, PASSWORD)
        page = await browser.http.get("/webhook-secret")
        assert page.status_code == 200
        assert secret not in page.text
        assert "Standard Webhooks" in page.text and "docs/webhooks.md" in page.text
        assert '<a href="/webhook-secret" aria-current="page">Webhook secret</a>' in page.text
        token = csrf_of(page.text)

        forged = await browser.http.post("/webhook-secret/show", data={"csrf": "x"})
        assert forged.status_code == 403 and secret not in forged.text
        shown = await browser.http.post("/webhook-secret/show", data={"csrf": token})
        assert shown.status_code == 200
        assert f'value="{secret}"' in shown.text
        assert shown.headers["cache-control"] == "no-store"

        confirm = await browser.http.get("/webhook-secret/rotate")
        assert 'name="grace" value="86400" checked' in confirm.text
        assert 'name="grace" value="0"' in confirm.text
        odd = await browser.http.post("/webhook-secret/rotate", data={"csrf": token, "grace": "7"})
        assert odd.status_code == 400 and "Choose one of the grace periods" in odd.text

        rotated = await browser.http.post(
            "/webhook-secret/rotate", data={"csrf": token, "grace": "86400"}
        )
        assert rotated.headers["cache-control"] == "no-store"
        with platform.client(owner) as client:
            current = client.webhook_secret.get()
        assert current.secret != secret
        assert f'value="{current.secret}"' in rotated.text
        assert "The old secret keeps signing, beside the new one, until" in rotated.text
        until = current.previous_valid_until
        assert until is not None and until.strftime("%Y-%m-%d %H:%M:%S") in rotated.text

        leaked = await browser.http.post(
            "/webhook-secret/rotate", data={"csrf": token, "grace": "0"}
        )
        assert "The old secret no longer signs" in leaked.text
        assert current.secret not in leaked.text

        # Without jobs:write there is no such page, nor a link to it.
        await _narrow_session(database_url, browser, {scopes.JOBS_READ, scopes.JOBS_RUN})
        assert (await browser.http.get("/webhook-secret")).status_code == 404
        assert "/webhook-secret" not in (await browser.http.get("/executions")).text
        refused = await browser.http.post("/webhook-secret/show", data={"csrf": token})
        assert refused.status_code == 404
