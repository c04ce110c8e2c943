"""The job form in a browser: a cron job created with its next runs previewed as it is typed,
refusals shown beside their fields, an edit that lost a race explained and then saved, the
schedule's fields following its kind, and the same form with JavaScript off."""

from __future__ import annotations

import re

from console_browser import create_job, inline_code, screenshot, sign_in
from playwright.sync_api import Browser, Page, expect

JOB_URL = re.compile(r"/jobs/([0-9a-f-]{36})$")
PHONE = {"width": 390, "height": 844}


def _slot(page: Page, name: str):
    """The error shown beside the field `name`."""
    return page.locator(f"#slot-{name}")


def test_a_cron_job_is_created_with_its_next_runs_previewed_as_it_is_typed(page: Page, platform):
    email = platform.register()
    sign_in(page, email)
    page.goto("/jobs/new")
    expect(page.get_by_role("heading", name="New job")).to_be_visible()
    assert inline_code(page.content()) == []

    # The kind decides which fields are shown.
    kind = page.get_by_label("Schedule kind")
    expression = page.get_by_label("Cron expression")
    interval = page.get_by_label("Interval (seconds)")
    expect(expression).to_be_visible()
    expect(interval).to_be_hidden()
    kind.select_option(label="Fixed rate")
    expect(interval).to_be_visible()
    expect(expression).to_be_hidden()
    kind.select_option(label="Calendar interval")
    expect(page.get_by_label("Every")).to_be_visible()
    expect(interval).to_be_hidden()
    kind.select_option(label="Cron")
    expect(expression).to_be_visible()

    preview = page.locator("#schedule-preview")
    expect(preview).to_have_attribute("aria-live", "polite")
    expect(preview).to_contain_text("Fill in cron expression")
    page.get_by_label("Name").fill("weekday digest")
    page.get_by_label("Labels (optional)").fill("team: billing")
    page.get_by_label("Type").select_option("log")
    help_of = page.locator("summary")
    expect(help_of.filter(has_text="Payload fields of type log")).to_be_visible()
    expect(help_of.filter(has_text="Payload fields of type http")).to_be_hidden()
    # A mistake: the server's message comes beside the field as it is typed.
    expression.fill("61 9 * * 1-5")
    expect(_slot(page, "cron_expression")).to_have_text("minute 61 is out of range 0-59")
    expect(preview.get_by_role("listitem")).to_have_count(0)
    expression.fill("30 9 * * 1-5")
    expect(preview.get_by_role("listitem")).to_have_count(5)
    expect(_slot(page, "cron_expression")).to_have_text("")
    page.get_by_label("Time zone").fill("Asia/Tokyo")
    expect(preview.get_by_role("listitem").first).to_contain_text("09:30:00 JST")
    expect(preview.get_by_role("listitem").first).to_contain_text("(00:30 UTC)")
    screenshot(page, "job-new")
    page.set_viewport_size(PHONE)
    screenshot(page, "job-new-phone")
    page.set_viewport_size({"width": 1280, "height": 800})

    # Saved with a bad expression: refused beside the field, what was typed kept.
    page.get_by_label("Payload (JSON)").fill('{"message": "digest"}')
    expression.fill("30 9 * * MON-FRX")
    page.get_by_role("button", name="Create job").click()
    expect(_slot(page, "cron_expression")).not_to_be_empty()
    expect(page.get_by_role("alert")).to_contain_text("The job was not saved")
    expect(page.get_by_label("Cron expression")).to_have_value("30 9 * * MON-FRX")
    expect(page.get_by_label("Name")).to_have_value("weekday digest")
    expect(page.get_by_label("Time zone")).to_have_value("Asia/Tokyo")

    # Payload that is not JSON: said so before anything is sent.
    page.get_by_label("Cron expression").fill("30 9 * * 1-5")
    page.get_by_label("Payload (JSON)").fill('{"message": digest}')
    page.get_by_role("button", name="Create job").click()
    expect(_slot(page, "payload")).to_contain_text("is not valid JSON")
    expect(page.get_by_label("Payload (JSON)")).to_have_value('{"message": digest}')

    page.get_by_label("Payload (JSON)").fill('{"message": "digest"}')
    page.get_by_role("button", name="Create job").click()
    expect(page).to_have_url(JOB_URL)
    job_id = JOB_URL.search(page.url).group(1)
    with platform.client_for(email) as client:
        job = client.jobs.get(job_id)
        assert [j.id for j in client.jobs.list().items] == [job.id]
    assert job.name == "weekday digest"
    assert job.labels == {"team": "billing"}
    assert job.schedule.kind == "cron"
    assert job.schedule.expression == "30 9 * * 1-5"
    assert job.schedule.timezone == "Asia/Tokyo"
    assert job.payload["message"] == "digest"


def test_an_edit_that_lost_a_race_is_explained_then_overwrites(page: Page, platform):
    email = platform.register()
    with platform.client_for(email) as client:
        job = create_job(client, "hourly-sync")
    sign_in(page, email)
    page.goto(f"/jobs/{job.id}/edit")
    expect(page.get_by_label("Interval (seconds)")).to_have_value("3600")
    expect(page.get_by_role("listitem").filter(has_text="UTC")).to_have_count(5)
    page.get_by_label("Name").fill("hourly-sync-v2")
    page.get_by_label("Interval (seconds)").fill("1800")

    with platform.client_for(email) as client:  # someone else, meanwhile
        client.jobs.update(job.id, {"description": "changed elsewhere"}, if_match=job.version)

    page.get_by_role("button", name="Save changes").click()
    conflict = page.get_by_role("alert").filter(has_text="changed by someone else")
    expect(conflict).to_contain_text(
        "This job was changed by someone else since you opened it (now version 2)"
    )
    row = conflict.get_by_role("row").filter(has_text="Description")
    expect(row).to_contain_text("changed elsewhere")
    expect(conflict.get_by_role("row").filter(has_text="Name")).to_contain_text("hourly-sync-v2")
    expect(page.get_by_label("Name")).to_have_value("hourly-sync-v2")
    expect(page.get_by_label("Interval (seconds)")).to_have_value("1800")
    screenshot(page, "job-edit-conflict")

    page.get_by_role("button", name="Overwrite version 2").click()
    expect(page).to_have_url(re.compile(rf"/jobs/{job.id}$"))
    with platform.client_for(email) as client:
        saved = client.jobs.get(job.id)
    assert saved.name == "hourly-sync-v2"
    assert saved.schedule.interval_s == 1800
    assert saved.description is None  # the form's (empty) description won
    assert saved.version == 3


def test_without_javascript_every_kind_is_shown_and_a_fixed_rate_job_is_created(
    browser: Browser, platform
):
    email = platform.register()
    context = browser.new_context(base_url=platform.console_url, java_script_enabled=False)
    try:
        page = context.new_page()
        sign_in(page, email)
        page.goto("/jobs/new")
        for label in ("Cron expression", "Interval (seconds)", "Delay (seconds)", "Every"):
            expect(page.get_by_label(label)).to_be_visible()
        page.get_by_label("Name").fill("every ten minutes")
        page.get_by_label("Type").select_option("log")
        page.get_by_label("Schedule kind").select_option(label="Fixed rate")
        page.get_by_label("Interval (seconds)").fill("600")
        page.get_by_label("Payload (JSON)").fill('{"message": "tick"}')
        page.get_by_role("button", name="Preview next runs").click()
        expect(page.locator("#schedule-preview").get_by_role("listitem")).to_have_count(5)
        expect(page.get_by_label("Interval (seconds)")).to_have_value("600")
        page.get_by_role("button", name="Create job").click()
        expect(page).to_have_url(JOB_URL)
        job_id = JOB_URL.search(page.url).group(1)
    finally:
        context.close()
    with platform.client_for(email) as client:
        job = client.jobs.get(job_id)
    assert job.name == "every ten minutes"
    assert job.schedule.kind == "fixed_rate"
    assert job.schedule.interval_s == 600
