"""console_service.describe: every kind of schedule in plain words, and never an exception
for a schedule the API accepts (or one a newer server sends)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from console_service.describe import duration_in_words, schedule_in_words
from libs.scheduling import cron
from scheduler_client import models

ZONES = ["UTC", "Europe/London", "Europe/Paris", "America/New_York", "Asia/Kolkata"]
MINUTES = ["*", "0", "30", "*/15", "5,35", "0-10/5"]
HOURS = ["*", "0", "1", "9", "1-3", "*/6", "9,17"]
DAYS_OF_MONTH = ["*", "1", "15", "L", "31", "1-7", "LW", "1W", "L-2", "L-3W,15", "L-3W", "1,L"]
MONTHS = ["*", "2", "*/3", "3,10", "JAN-JUN"]
DAYS_OF_WEEK = ["*", "1-5", "0", "SUN", "MON#2", "6", "mon-fri"]
QUARTZ_DAYS_OF_WEEK = ["2-6", "1", "SUN", "MON#2", "6L", "7"]
QUARTZ_YEARS = ["", " *", " 2026-2030", " */2"]
NOON = datetime(2030, 1, 7, 8, 0, tzinfo=UTC)  # a Monday; 09:00 in Paris


@pytest.mark.parametrize(
    ("schedule", "words"),
    [
        (
            {"kind": "cron", "expression": "30 1 * * *", "timezone": "Europe/London"},
            "At 01:30 AM, every day (Europe/London)",
        ),
        ({"kind": "cron", "expression": "@daily"}, "At 12:00 AM, every day (UTC)"),
        ({"kind": "cron", "expression": "*/15 * * * *"}, "Every 15 minutes (UTC)"),
        (
            {"kind": "cron", "expression": "0 9 * * 1-5", "timezone": "Europe/Paris"},
            "At 09:00 AM, Monday through Friday (Europe/Paris)",
        ),
        # Quartz counts the days of the week from 1, Sunday: 6 is Friday.
        (
            {"kind": "cron", "expression": "0 0 12 ? * 6#3"},
            "At 12:00 PM, on the third Friday of the month (UTC)",
        ),
        (
            {"kind": "cron", "expression": "0 0 18 LW * ? 2026-2030"},
            "At 06:00 PM, on the last weekday of the month, 2026 through 2030 (UTC)",
        ),
        # Days cron-descriptor would misread are shown as they are written.
        (
            {"kind": "cron", "expression": "0 0 L-3W * ?"},
            "On the cron schedule 0 0 L-3W * ? (UTC)",
        ),
        ({"kind": "fixed_rate", "intervalSeconds": 900}, "Every 15 minutes"),
        ({"kind": "fixed_rate", "intervalSeconds": 3600}, "Every hour"),
        ({"kind": "fixed_rate", "intervalSeconds": 90}, "Every 90 seconds"),
        ({"kind": "fixed_delay", "delaySeconds": 900}, "15 minutes after each run ends"),
        ({"kind": "fixed_delay", "delaySeconds": 86400}, "1 day after each run ends"),
        (
            {
                "kind": "calendar",
                "every": 2,
                "unit": "weeks",
                "anchor": NOON.isoformat(),
                "timezone": "Europe/Paris",
            },
            "Every 2 weeks on Monday at 09:00 (Europe/Paris)",
        ),
        (
            {"kind": "calendar", "every": 1, "unit": "months", "startAt": "2030-01-31T06:00:00Z"},
            "Every month on day 31 at 06:00 (UTC), from 2030-01-31 06:00 UTC",
        ),
        (
            {"kind": "calendar", "every": 1, "unit": "years", "anchor": "2028-02-29T10:00:00Z"},
            "Every year on 29 February at 10:00 (UTC)",
        ),
        ({"kind": "calendar", "every": 3, "unit": "days"}, "Every 3 days (UTC)"),
        ({"kind": "once", "at": "2030-01-01T09:00:00+00:00"}, "Once, at 2030-01-01 09:00 UTC"),
        ({"kind": "once", "at": "2030-01-01T10:00:30+01:00"}, "Once, at 2030-01-01 09:00:30 UTC"),
        ({"kind": "once"}, "Once, as soon as it is created"),
        (
            {
                "kind": "fixed_rate",
                "intervalSeconds": 7200,
                "startAt": "2030-01-01T00:00:00Z",
                "endAt": "2030-02-01T00:00:00Z",
                "maxRuns": 10,
            },
            "Every 2 hours, from 2030-01-01 00:00 UTC, until 2030-02-01 00:00 UTC, at most 10 runs",
        ),
        (
            {"kind": "fixed_delay", "delaySeconds": 60, "maxRuns": 1},
            "1 minute after each run ends, at most 1 run",
        ),
        # A kind newer than this console, or no schedule at all.
        ({"kind": "lunar", "phase": "full"}, "A schedule of kind 'lunar'"),
        (None, "A schedule"),
    ],
)
def test_each_kind_is_described(schedule, words):
    assert schedule_in_words(schedule) == words


def test_models_and_json_read_alike():
    model = models.CronSchedule(expression="30 1 * * *", timezone="Europe/London")
    assert schedule_in_words(model) == schedule_in_words(models.body(model))


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (1, "1 second"),
        (59, "59 seconds"),
        (120, "2 minutes"),
        (5400, "90 minutes"),
        (0.5, "0.5 seconds"),
    ],
)
def test_durations(seconds, words):
    assert duration_in_words(seconds) == words


def _standard() -> st.SearchStrategy[str]:
    fields = [MINUTES, HOURS, DAYS_OF_MONTH, MONTHS, DAYS_OF_WEEK]
    return st.tuples(*(st.sampled_from(f) for f in fields)).map(" ".join)


def _quartz() -> st.SearchStrategy[str]:
    return st.builds(
        lambda second, minute, hour, days, month, weekday, year, day_first: (
            f"{second} {minute} {hour} {days if day_first else '?'} {month} "
            f"{'?' if day_first else weekday}{year}"
        ),
        st.sampled_from(["0", "*/20", "30"]),
        st.sampled_from(MINUTES),
        st.sampled_from(HOURS),
        st.sampled_from(DAYS_OF_MONTH),
        st.sampled_from(MONTHS),
        st.sampled_from(QUARTZ_DAYS_OF_WEEK),
        st.sampled_from(QUARTZ_YEARS),
        st.booleans(),
    )


def _valid_cron(expression: str) -> bool:
    try:
        cron.parse(expression)
    except cron.CronError:
        return False
    return True


def _made(model: type) -> object:
    """`model` built from keywords, without a signature for `builds` to fill in by itself
    (it would add the fields' camelCase aliases, which pydantic prefers)."""
    return lambda **fields: model(**fields)


instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)
bounds = {
    "timezone": st.sampled_from(ZONES),
    "start_at": st.none() | instants,
    "end_at": st.none() | instants,
    "max_runs": st.none() | st.integers(1, 1_000_000_000),
}
schedules = st.one_of(
    st.builds(_made(models.CronSchedule), expression=_standard() | _quartz(), **bounds),
    st.builds(_made(models.FixedRateSchedule), interval_s=st.integers(1, 366 * 86400), **bounds),
    st.builds(_made(models.FixedDelaySchedule), delay_s=st.integers(1, 366 * 86400), **bounds),
    st.builds(
        _made(models.CalendarSchedule),
        every=st.integers(1, 1000),
        unit=st.sampled_from(["days", "weeks", "months", "years"]),
        anchor=st.none() | instants,
        **bounds,
    ),
    st.builds(_made(models.OnceSchedule), at=st.none() | instants, **bounds),
)


@given(schedules)
def test_every_valid_schedule_is_described_in_one_line(schedule):
    if isinstance(schedule, models.CronSchedule):
        assume(_valid_cron(schedule.expression))
    words = schedule_in_words(schedule)
    assert words and "\n" not in words
    assert words[0].isupper() or words[0].isdigit()
    if isinstance(schedule, models.CronSchedule | models.CalendarSchedule):
        assert f"({schedule.timezone})" in words
    if isinstance(schedule, models.CronSchedule):
        fields = schedule.expression.split()
        days = fields[3] if len(fields) > 5 else fields[2]
        if "," not in days and "L-" not in days:  # what cron-descriptor reads right
            assert not words.startswith("On the cron schedule"), words
    if schedule.max_runs is not None and not isinstance(schedule, models.OnceSchedule):
        assert f"at most {schedule.max_runs} run" in words
    if schedule.end_at is not None:
        assert f"until {schedule.end_at:%Y-%m-%d %H:%M}" in words


@given(
    st.dictionaries(
        st.text(max_size=10).filter(lambda key: key != "kind"),
        st.none() | st.text(max_size=10) | st.integers(),
    )
)
def test_anything_else_is_still_described(value):
    assert schedule_in_words(value).startswith("A schedule")


def test_a_zone_of_another_offset_moves_the_wall_time():
    schedule = models.CalendarSchedule(
        every=1, unit="days", anchor=NOON - timedelta(hours=8), timezone="Asia/Kolkata"
    )
    assert schedule_in_words(schedule) == "Every day at 05:30 (Asia/Kolkata)"
