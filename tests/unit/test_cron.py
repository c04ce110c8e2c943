"""libs.cron: what each expression becomes for croniter, what is refused and why, and what the
translated Quartz expressions fire at (checked through libs.schedule, in UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from libs import cron, schedule

TRANSLATIONS = [
    # (id, expression, croniter form)
    ("standard", "*/5 * * * *", "*/5 * * * *"),
    ("standard-names", "0 9 * JAN-MAR mon-fri", "0 9 * jan-mar mon-fri"),
    ("standard-question-mark", "0 9 ? * 1", "0 9 * * 1"),
    ("standard-last-day", "0 0 L * *", "0 0 l * *"),
    ("standard-nth-weekday", "0 0 * * 1#2", "0 0 * * 1#2"),
    ("standard-last-friday", "0 0 * * L5", "0 0 * * l5"),
    ("standard-sunday-as-7", "0 0 * * 7", "0 0 * * 7"),
    ("extra-whitespace", "  0  9 *\t* *  ", "0 9 * * *"),
    ("macro-daily", "@daily", "0 0 * * *"),
    ("macro-hourly", "@HOURLY", "0 * * * *"),
    ("quartz-every-10s", "0/10 * * * * ?", "* * * * * 0/10"),
    ("quartz-weekdays", "0 0/15 * ? * MON-FRI", "0/15 * * * mon-fri 0"),
    ("quartz-first-monday", "0 0 12 ? * 2#1", "0 12 * * 1#1 0"),
    ("quartz-named-nth", "0 0 12 ? * MON#2", "0 12 * * mon#2 0"),
    ("quartz-sunday-is-1", "0 0 12 ? * 1", "0 12 * * 0 0"),
    ("quartz-saturday-is-7", "0 0 12 ? * 7", "0 12 * * 6 0"),
    ("quartz-range", "0 0 12 ? * 2-6", "0 12 * * 1-5 0"),
    ("quartz-list", "0 0 12 ? * 1,7", "0 12 * * 0,6 0"),
    ("quartz-step", "0 0 12 ? * 2/2", "0 12 * * 1/2 0"),
    ("quartz-last-friday", "0 0 12 ? * 6L", "0 12 * * l5 0"),
    ("quartz-last-friday-named", "0 0 12 ? * FRIL", "0 12 * * l5 0"),
    ("quartz-last-day-of-week", "0 0 12 ? * L", "0 12 * * 6 0"),
    ("quartz-last-sunday", "0 0 12 ? * 1L", "0 12 * * l0 0"),
    ("quartz-fifth-sunday", "0 0 12 ? * 1#5", "0 12 * * 0#5 0"),
    ("last-day-in-a-list", "0 0 L,15 * *", "0 0 l,15 * *"),
    ("quartz-last-day-of-month", "0 30 23 L * ?", "30 23 l * * 0"),
    ("quartz-7-fields-any-year", "0 0 12 * * ? *", "0 12 * * * 0"),
    ("quartz-day-of-month-with-star-day-of-week", "0 0 12 15 * *", "0 12 15 * * 0"),
]


@pytest.mark.parametrize(
    ("expression", "expected"), [t[1:] for t in TRANSLATIONS], ids=[t[0] for t in TRANSLATIONS]
)
def test_translation(expression: str, expected: str) -> None:
    assert cron.parse(expression).croniter_form == expected


REFUSALS = [
    # (id, expression, part of the reason)
    ("too-few-fields", "* * * *", "expected 5 fields"),
    ("too-many-fields", "0 0 0 * * ? * *", "expected 5 fields"),
    ("nearest-weekday", "0 0 15W * *", "nearest weekday"),
    ("nearest-weekday-quartz", "0 0 12 15W * ?", "nearest weekday"),
    ("last-weekday", "0 0 12 LW * ?", "nearest weekday"),
    ("days-before-end", "0 0 12 L-3 * ?", "days before the end of the month"),
    ("year", "0 0 12 * * ? 2027", "years are not supported"),
    ("year-range", "0 0 12 * * ? 2026-2030", "years are not supported"),
    ("hashed", "H 0 * * *", "hashed"),
    ("minute-out-of-range", "60 * * * *", "minute 60 is out of range 0-59"),
    ("hour-out-of-range", "0 24 * * *", "hour 24 is out of range 0-23"),
    ("day-out-of-range", "0 0 32 * *", "day-of-month 32 is out of range 1-31"),
    ("day-zero", "0 0 0 * *", "day-of-month 0 is out of range"),
    ("month-out-of-range", "0 0 1 13 *", "month 13 is out of range 1-12"),
    ("second-out-of-range", "60 0 12 * * ?", "second 60 is out of range"),
    ("quartz-day-of-week-0", "0 0 12 ? * 0", "1=SUN..7=SAT"),
    ("quartz-day-of-week-8", "0 0 12 ? * 8", "out of range 1-7"),
    ("standard-day-of-week-8", "0 0 * * 8", "day-of-week 8 is out of range 0-7"),
    ("nth-out-of-range", "0 0 12 ? * 2#6", "#1-#5"),
    ("nth-zero", "0 0 * * 1#0", "#1-#5"),
    ("unknown-name", "0 0 * * FOO", "'FOO' is not a valid day-of-week name"),
    ("name-in-wrong-field", "0 0 * MON *", "not a valid month name"),
    ("zero-step", "*/0 * * * *", "step of 0"),
    ("both-days-quartz", "0 0 12 15 * MON", "put ? in one of them"),
    ("question-mark-in-minutes", "0 ? * * * ?", "not valid in the minute field"),
    ("garbage", "every day at noon please", "not valid in the minute field"),
    ("unknown-macro", "@reboot", "unknown macro"),
    ("non-ascii-digit", "0 0 \u0663 * *", "ASCII"),
]


@pytest.mark.parametrize(
    ("expression", "reason"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_refusal(expression: str, reason: str) -> None:
    with pytest.raises(cron.CronError) as caught:
        cron.parse(expression)
    assert reason in str(caught.value)


NOW = datetime(2026, 1, 1, tzinfo=UTC)  # a Thursday


def fires(expression: str, count: int = 4, zone: str = "UTC", now: datetime = NOW) -> list[str]:
    s = schedule.normalise(schedule.Cron(expression=expression, timezone=zone), now)
    return [f.strftime("%Y-%m-%d %H:%M:%S") for f in schedule.preview(s, now, count)]


FIRES = [
    # (id, expression, the first fires from NOW in UTC)
    (
        "quartz-every-10-seconds",
        "0/10 * * * * ?",
        ["2026-01-01 00:00:00", "2026-01-01 00:00:10", "2026-01-01 00:00:20"],
    ),
    (
        "quartz-every-15-minutes-on-weekdays",
        "0 0/15 * ? * MON-FRI",
        ["2026-01-01 00:00:00", "2026-01-01 00:15:00", "2026-01-01 00:30:00"],
    ),
    (
        "quartz-first-monday-at-noon",
        "0 0 12 ? * 2#1",
        ["2026-01-05 12:00:00", "2026-02-02 12:00:00", "2026-03-02 12:00:00"],
    ),
    (
        "standard-second-monday",
        "0 9 * * MON#2",
        ["2026-01-12 09:00:00", "2026-02-09 09:00:00", "2026-03-09 09:00:00"],
    ),
    (
        "standard-last-day-of-month",
        "0 0 L * *",
        ["2026-01-31 00:00:00", "2026-02-28 00:00:00", "2026-03-31 00:00:00"],
    ),
    (
        "quartz-last-day-of-month",
        "0 30 23 L * ?",
        ["2026-01-31 23:30:00", "2026-02-28 23:30:00", "2026-03-31 23:30:00"],
    ),
    (
        "quartz-last-friday",
        "0 0 12 ? * 6L",
        ["2026-01-30 12:00:00", "2026-02-27 12:00:00", "2026-03-27 12:00:00"],
    ),
    (
        "quartz-sunday-and-saturday",
        "0 0 12 ? * 1,7",
        ["2026-01-03 12:00:00", "2026-01-04 12:00:00", "2026-01-10 12:00:00"],
    ),
    (
        "quartz-7-fields-any-year",
        "0 0 12 * * ? *",
        ["2026-01-01 12:00:00", "2026-01-02 12:00:00", "2026-01-03 12:00:00"],
    ),
    (
        "standard-day-of-month-or-day-of-week",
        "0 0 13 * FRI",
        ["2026-01-02 00:00:00", "2026-01-09 00:00:00", "2026-01-13 00:00:00"],
    ),
    (
        "leap-day",
        "0 0 29 2 *",
        ["2028-02-29 00:00:00", "2032-02-29 00:00:00", "2036-02-29 00:00:00"],
    ),
]


@pytest.mark.parametrize(
    ("expression", "expected"), [f[1:] for f in FIRES], ids=[f[0] for f in FIRES]
)
def test_fires(expression: str, expected: list[str]) -> None:
    assert fires(expression, count=len(expected)) == expected


@pytest.mark.parametrize(
    "expression",
    ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 12 31 2 ?"],
    ids=["february-30", "31st-of-30-day-months", "quartz-february-31"],
)
def test_an_expression_that_never_fires_is_refused(expression: str) -> None:
    with pytest.raises(schedule.InvalidSchedule, match="never fires") as caught:
        schedule.normalise(schedule.Cron(expression=expression), NOW)
    assert caught.value.field == "schedule.expression"


@pytest.mark.parametrize(
    "expression", ["0 0 15W * *", "0 0 12 ? * 2#1 2027", "61 * * * *"], ids=["W", "year", "range"]
)
def test_normalise_reports_an_unsupported_expression_on_its_field(expression: str) -> None:
    with pytest.raises(schedule.InvalidSchedule) as caught:
        schedule.normalise(schedule.Cron(expression=expression), NOW)
    assert caught.value.field == "schedule.expression"
    assert str(caught.value)  # a reason for the user


def test_walls_after_is_strictly_after_and_ascending() -> None:
    walls = cron.walls_after(cron.parse("*/30 * * * *"), datetime(2026, 1, 1, 10, 0))
    assert [next(walls), next(walls)] == [
        datetime(2026, 1, 1, 10, 30),
        datetime(2026, 1, 1, 11, 0),
    ]


def test_walls_after_stops_at_the_end_of_the_calendar() -> None:
    walls = cron.walls_after(cron.parse("0 0 1 1 *"), datetime(9998, 6, 1))
    assert list(walls) == [datetime(9999, 1, 1)]
