"""The jobs pages in a browser, against the platform `schedctl up` runs: a user finds a job in
the list by its schedule in words and by filters, opens it, runs it and sees its execution
arrive by itself, pauses, resumes, cancels and deletes it (each confirmed), and is told when
the job changed under the page; another user cannot see it. The many smaller checks are in
tests/integration/test_console_jobs.py."""

from __future__ import annotations

import re

from console_browser import create_job, inline_code, screenshot, sign_in
from playwright.sync_api import Page, expect

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
NIGHTLY = {"kind": "cron", "expression": "30 1 * * *", "timezone": "Europe/London"}
EXECUTION_WAIT_MS = 30_000  # scheduler -> Kafka -> executor -> a SUCCEEDED row


def test_a_user_finds_runs_pauses_cancels_and_deletes_a_job(page: Page, platform):
    owner = platform.register()
    with platform.client_for(owner) as client:
        job = create_job(
            client,
            "nightly-report",
            schedule=NIGHTLY,
            description="Totals of the day, for the billing team",
            labels={"team": "billing"},
        )
        create_job(client, "hourly-sync")
        paused = create_job(
            client, "weekly-cleanup", schedule={"kind": "calendar", "every": 1, "unit": "weeks"}
        )
        client.jobs.pause(paused.id)

        sign_in(page, owner)
        table = page.locator("#jobs")
        row = table.get_by_role("row").filter(has_text="nightly-report")
        expect(row).to_contain_text("At 01:30 AM, every day (Europe/London)")
        expect(row).to_contain_text("never")
        expect(table.get_by_role("row").filter(has_text="hourly-sync")).to_contain_text(
            "Every hour"
        )
        assert inline_code(page.content()) == []
        screenshot(page, "jobs-list")
        page.set_viewport_size(PHONE)
        screenshot(page, "jobs-list-phone")
        page.set_viewport_size(DESKTOP)

        # Filters: the table changes in place and the address follows them.
        page.get_by_role("checkbox", name="Paused").check()
        expect(table.get_by_role("row")).to_have_count(2)  # the header and weekly-cleanup
        expect(table).to_contain_text("weekly-cleanup")
        expect(page).to_have_url(re.compile(r"status=PAUSED"))
        page.get_by_role("checkbox", name="Paused").uncheck()
        page.get_by_label("Name starts with").fill("nightly")
        page.get_by_label("Name starts with").press("Enter")
        expect(table.get_by_role("row")).to_have_count(2)
        expect(table).to_contain_text("nightly-report")
        expect(page).to_have_url(re.compile(r"name=nightly"))

        row.get_by_role("link", name="nightly-report").click()
        expect(page).to_have_url(re.compile(rf"/jobs/{job.id}$"))
        expect(page.get_by_role("heading", name="nightly-report", level=1)).to_be_visible()
        expect(page.get_by_text("Totals of the day, for the billing team")).to_be_visible()
        expect(page.locator(".schedule-words")).to_have_text(
            "At 01:30 AM, every day (Europe/London)"
        )
        fire_times = page.get_by_role("list", name=re.compile("fire times"))
        expect(fire_times.get_by_role("listitem")).to_have_count(10)
        expect(fire_times.get_by_role("listitem").first).to_contain_text(":30:00")
        expect(page.locator("#executions")).to_contain_text("No executions yet.")
        assert inline_code(page.content()) == []
        screenshot(page, "job-detail")

        # Run now: the execution appears in the list by itself (htmx polling).
        page.get_by_role("button", name="Run now").click()
        expect(page.get_by_role("status")).to_contain_text("The job will run now")
        expect(page.locator("#executions")).to_contain_text("SUCCEEDED", timeout=EXECUTION_WAIT_MS)
        # Each execution names the executor that ran it.
        (execution,) = client.executions.list(job_id=[job.id]).items
        assert execution.worker
        expect(page.locator("#executions")).to_contain_text(execution.worker)

        page.get_by_role("button", name="Pause").click()
        expect(page.get_by_role("status")).to_contain_text("The job is paused")
        expect(page.locator(".job-status")).to_contain_text("PAUSED")
        page.get_by_role("button", name="Resume").click()
        expect(page.get_by_role("status")).to_contain_text("The job is back on its schedule")
        expect(page.locator(".job-status")).to_contain_text("SCHEDULED")

        # The job changes after the page was loaded: the action is explained, not applied.
        shown = client.jobs.get(job.id)
        client.jobs.update(job.id, {"description": "Changed elsewhere"}, if_match=shown.version)
        page.get_by_role("button", name="Pause").click()
        expect(
            page.get_by_role("heading", name="The job changed since you loaded this page")
        ).to_be_visible()
        assert client.jobs.get(job.id).status == "SCHEDULED"
        page.get_by_role("link", name="Reload the job").click()
        expect(page.get_by_text("Changed elsewhere")).to_be_visible()

        # Cancel asks first; keeping the job closes the dialog and changes nothing.
        page.get_by_role("link", name="Cancel…").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_be_visible()
        expect(dialog.get_by_role("button", name="Keep the job")).to_be_focused()
        dialog.get_by_role("button", name="Keep the job").click()
        expect(dialog).to_be_hidden()
        assert client.jobs.get(job.id).status == "SCHEDULED"
        page.get_by_role("link", name="Cancel…").click()
        page.get_by_role("dialog").get_by_role("button", name="Cancel the job").click()
        expect(page.get_by_role("status")).to_contain_text("The job is cancelled")
        expect(page.get_by_role("button", name="Run now")).to_have_count(0)
        expect(page.get_by_role("link", name="Edit")).to_have_count(0)

        page.get_by_role("link", name="Delete…").click()
        page.get_by_role("dialog").get_by_role("button", name="Delete the job").click()
        expect(page).to_have_url(re.compile(r"/jobs\?notice=deleted$"))
        expect(page.get_by_role("status")).to_contain_text("The job was deleted")
        expect(page.locator("#jobs")).not_to_contain_text("nightly-report")
        expect(page.locator("#jobs")).to_contain_text("hourly-sync")


def test_another_user_gets_not_found_for_a_job_not_theirs(page: Page, platform):
    owner, other = platform.register(), platform.register()
    with platform.client_for(owner) as client:
        job = create_job(client, "private-report")
    sign_in(page, other)
    expect(page.locator("#jobs")).not_to_contain_text("private-report")
    answer = page.goto(f"/jobs/{job.id}")
    assert answer is not None and answer.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.get_by_text("private-report")).to_have_count(0)
