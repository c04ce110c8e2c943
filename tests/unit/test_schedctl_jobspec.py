"""schedctl's job documents from flags and files: what `jobs create`, `jobs edit` and
`schedules preview` send, and the one-line refusal of what they cannot send."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from schedctl import jobspec
from schedctl.output import UsageProblem

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def flags(**values) -> jobspec.JobFlags:
    schedule = {k: values.pop(k) for k in ("cron", "tz", "every", "delay", "at") if k in values}
    return jobspec.JobFlags(schedule=jobspec.ScheduleFlags(**schedule), **values)


# --- create --------------------------------------------------------------------------------------


def test_http_flags_make_an_http_job_with_every_field_in_the_apis_names():
    job = jobspec.new_job(
        flags(
            name="ping", http_url="https://example.com/hook", http_method="put",
            headers=["X-Team: ops", "Accept:application/json"], body='{"a": 1}', every="15m",
            tz="Europe/Paris", labels=["team=ops", "tier=a=b"], max_attempts=1, timeout="30s",
            description="pings",
        ),
        now=NOW,
    )  # fmt: skip
    assert job == {
        "name": "ping",
        "description": "pings",
        "type": "http",
        "payload": {
            "url": "https://example.com/hook",
            "method": "PUT",
            "headers": {"X-Team": "ops", "Accept": "application/json"},
            "body": {"a": 1},
        },
        "schedule": {"kind": "fixed_rate", "intervalSeconds": 900, "timezone": "Europe/Paris"},
        "labels": {"team": "ops", "tier": "a=b"},
        "retryPolicy": {"maxAttempts": 1},
        "timeoutSeconds": 30,
    }


@pytest.mark.parametrize(
    ("schedule_flags", "expected"),
    [
        ({"cron": "30 1 * * *"}, {"kind": "cron", "expression": "30 1 * * *"}),
        ({"every": "90"}, {"kind": "fixed_rate", "intervalSeconds": 90}),
        ({"delay": "2h"}, {"kind": "fixed_delay", "delaySeconds": 7200}),
        ({"at": "now"}, {"kind": "once"}),  # no `at`: the job service runs it now
        ({"at": "+10m"}, {"kind": "once", "at": "2026-03-01T12:10:00+00:00"}),
        ({"at": "2026-05-01T09:00Z"}, {"kind": "once", "at": "2026-05-01T09:00:00+00:00"}),
        # a wall-clock time without an offset is one in --tz, which the schedule keeps
        (
            {"at": "2026-07-01 09:00", "tz": "Europe/Paris"},
            {"kind": "once", "at": "2026-07-01T09:00:00+02:00", "timezone": "Europe/Paris"},
        ),
    ],
)
def test_each_schedule_flag_names_one_kind(schedule_flags, expected):
    job = jobspec.new_job(flags(name="n", type="log", payload="{}", **schedule_flags), now=NOW)
    assert job["schedule"] == expected


def test_the_type_is_http_only_when_http_flags_are_given_and_no_type():
    logged = jobspec.new_job(
        flags(name="n", type="log", payload='{"message": "hi"}', cron="* * * * *"), now=NOW
    )
    assert (logged["type"], logged["payload"]) == ("log", {"message": "hi"})
    with pytest.raises(UsageProblem, match="--http-\\* flags are for http jobs, not 'log'"):
        jobspec.new_job(flags(name="n", type="log", http_url="http://x", every="1"), now=NOW)


def test_flags_override_a_job_file_and_fill_what_it_lacks():
    base = {
        "name": "from file",
        "type": "http",
        "payload": {"url": "https://a.example", "method": "GET"},
        "schedule": {"kind": "cron", "expression": "0 * * * *"},
        "labels": {"team": "ops"},
    }
    job = jobspec.new_job(
        flags(name="from flags", http_url="https://b.example", tz="Asia/Tokyo", labels=["env=a"]),
        now=NOW,
        base=base,
    )
    assert job["name"] == "from flags"
    assert job["payload"] == {"url": "https://b.example", "method": "GET"}
    assert job["schedule"] == {"kind": "cron", "expression": "0 * * * *", "timezone": "Asia/Tokyo"}
    assert job["labels"] == {"team": "ops", "env": "a"}
    assert base["name"] == "from file"  # the file's document is not changed in place


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "missing --name, --type (or --http-url), a schedule"),
        ({"name": "n", "type": "log"}, "missing a schedule (--cron, --every, --delay or --at)"),
        ({"name": "n", "http_url": "http://x", "cron": "* * * * *", "every": "5"},
         "give one schedule, not --cron and --every"),
        ({"name": "n", "http_url": "http://x", "every": "5 minutes"},
         "--every: '5 minutes' is not a duration"),
        ({"name": "n", "http_url": "http://x", "at": "tomorrow"}, "--at: 'tomorrow' is not a time"),
        ({"name": "n", "http_url": "http://x", "at": "2026-05-01 09:00", "tz": "Mars/Base"},
         "--tz: unknown time zone 'Mars/Base'"),
        ({"name": "n", "http_url": "http://x", "every": "5", "body": "{not json"},
         "--body: not valid JSON"),
        ({"name": "n", "type": "log", "every": "5", "payload": "[1]"},
         "--payload: expected a JSON object"),
        ({"name": "n", "http_url": "http://x", "every": "5", "headers": ["no colon"]},
         "--header: 'no colon' is not KEY:VALUE"),
        ({"name": "n", "http_url": "http://x", "every": "5", "labels": ["team"]},
         "--label: 'team' is not KEY=VALUE"),
    ],
)  # fmt: skip
def test_what_cannot_be_sent_is_refused_naming_the_flag(given, message):
    with pytest.raises(UsageProblem, match=message.replace("(", "\\(").replace(")", "\\)")):
        jobspec.new_job(flags(**given), now=NOW)


# --- edit ----------------------------------------------------------------------------------------

CURRENT = {
    "type": "http",
    "payload": {"url": "https://a.example", "method": "POST", "headers": {"A": "1"}},
    "schedule": {"kind": "cron", "expression": "0 * * * *", "timezone": "UTC", "maxRuns": None},
    "labels": {"team": "ops"},
    "retryPolicy": {"maxAttempts": 3, "initialBackoffSeconds": 5.0, "multiplier": 2.0},
}


def test_an_edit_sends_only_what_the_flags_change():
    assert jobspec.job_changes(flags(name="renamed"), CURRENT, now=NOW) == {"name": "renamed"}
    assert jobspec.job_changes(flags(description=""), CURRENT, now=NOW) == {"description": None}


def test_an_edit_of_part_of_a_payload_schedule_or_retry_policy_keeps_the_rest():
    changes = jobspec.job_changes(
        flags(http_url="https://b.example", headers=["B: 2"], tz="Europe/Paris", max_attempts=7,
              labels=["env=prod"]),
        CURRENT,
        now=NOW,
    )  # fmt: skip
    assert changes == {
        "payload": {"url": "https://b.example", "method": "POST", "headers": {"A": "1", "B": "2"}},
        "schedule": {"kind": "cron", "expression": "0 * * * *", "timezone": "Europe/Paris",
                     "maxRuns": None},
        "retryPolicy": {"maxAttempts": 7, "initialBackoffSeconds": 5.0, "multiplier": 2.0},
        "labels": {"team": "ops", "env": "prod"},
    }  # fmt: skip


def test_an_edit_with_a_new_schedule_replaces_it_and_a_file_gives_the_rest():
    changes = jobspec.job_changes(
        flags(every="1h"), CURRENT, now=NOW, base={"description": "hourly"}
    )
    assert changes == {
        "description": "hourly",
        "schedule": {"kind": "fixed_rate", "intervalSeconds": 3600},
    }


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "nothing to change"),
        ({"type": "log"}, "--type: a job's type cannot change"),
    ],
)
def test_an_edit_that_changes_nothing_or_the_type_is_refused(given, message):
    with pytest.raises(UsageProblem, match=message):
        jobspec.job_changes(flags(**given), CURRENT, now=NOW)


def test_http_flags_are_refused_on_an_edit_of_another_type():
    with pytest.raises(UsageProblem, match="for http jobs, not 'log' ones"):
        jobspec.job_changes(flags(http_url="http://x"), {**CURRENT, "type": "log"}, now=NOW)


# --- times ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), ("1w", 604800),
        (" 3H ", 10800),
    ],
)  # fmt: skip
def test_durations_in_seconds_or_with_a_unit(text, expected):
    assert jobspec.seconds(text, "--every") == expected


def test_a_range_bound_is_a_duration_ago_or_a_time():
    assert jobspec.since("1h", "--since", now=NOW) == NOW - timedelta(hours=1)
    assert jobspec.since("2026-02-01T00:00:00+01:00", "--since", now=NOW) == datetime(
        2026, 1, 31, 23, tzinfo=UTC
    )
    local = jobspec.since("2026-02-01T00:00", "--until", now=NOW)
    assert local.utcoffset() is not None  # this machine's zone, never a naive time


def test_a_wall_clock_time_in_a_zone_keeps_that_zones_offset():
    paris = ZoneInfo("Europe/Paris")
    winter = jobspec.moment("2026-01-15T09:00", "--at", now=NOW, in_zone=paris)
    assert winter.isoformat() == "2026-01-15T09:00:00+01:00"


# --- files ---------------------------------------------------------------------------------------


def test_yaml_keeps_times_as_written_for_the_api_to_judge():
    document = jobspec.parse_document(
        "name: n\nschedule:\n  kind: once\n  at: 2026-05-01T09:00:00\n", "job.yaml"
    )
    assert document["schedule"]["at"] == "2026-05-01T09:00:00"


def test_json_from_standard_input_and_files(tmp_path):
    assert jobspec.read_document("-", io.StringIO('{"name": "n"}')) == {"name": "n"}
    path = tmp_path / "job.json"
    path.write_text('{"name": "m"}')
    assert jobspec.read_document(str(path), io.StringIO()) == {"name": "m"}


@pytest.mark.parametrize(
    ("text", "source", "message"),
    [
        ("{nope", "job.json", "job.json: not valid JSON"),
        ("a: [", "job.yaml", "job.yaml: not valid JSON or YAML"),
        ("- 1\n- 2\n", "job.yaml", "job.yaml: expected a mapping of fields"),
    ],
)
def test_a_document_that_is_no_job_is_refused_naming_the_file(text, source, message):
    with pytest.raises(UsageProblem, match=message):
        jobspec.parse_document(text, source)


def test_a_missing_file_is_named(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(UsageProblem, match=f"cannot read {missing}: No such file"):
        jobspec.read_document(str(missing), io.StringIO())


def test_a_list_of_jobs_is_a_batch_of_mappings():
    text = "- name: a\n  schedule: {kind: once, at: 2026-05-01T09:00:00}\n- name: b\n"
    assert jobspec.parse_jobs(text, "jobs.yaml") == [
        {"name": "a", "schedule": {"kind": "once", "at": "2026-05-01T09:00:00"}},
        {"name": "b"},
    ]
    assert jobspec.parse_jobs('{"name": "one"}', "job.json") == {"name": "one"}
    assert jobspec.read_jobs("-", io.StringIO('[{"name": "x"}]')) == [{"name": "x"}]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "jobs.json: the list holds no jobs"),
        ('[{"name": "a"}, 3]', r"jobs.json: jobs\[1\]: expected a mapping of fields"),
        (
            '"name"',
            r"jobs.json: expected a mapping of fields \(name, type, schedule...\) or a list",
        ),
    ],
)
def test_a_list_that_is_no_batch_is_refused_naming_the_item(text, message):
    with pytest.raises(UsageProblem, match=message):
        jobspec.parse_jobs(text, "jobs.json")
