"""libs.scheduling.cron: what each expression becomes for croniter, what is refused and why, and
what the translated Quartz expressions fire at (checked through libs.scheduling.schedule, in
UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from libs.scheduling import cron, schedule

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
    # croniter reads neither W, L-n nor years: it gets * and libs.scheduling.cron filters its wall
    # times.
    ("quartz-nearest-weekday", "0 0 12 15W * ?", "0 12 * * * 0"),
    ("quartz-last-weekday", "0 0 12 LW * ?", "0 12 * * * 0"),
    ("quartz-days-before-end", "0 0 12 L-3 * ?", "0 12 * * * 0"),
    ("quartz-years", "0 0 12 ? * 2#1 2027", "0 12 * * 1#1 0"),
    ("standard-nearest-weekday", "0 9 15W * *", "0 9 * * *"),
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
    ("nearest-weekday-of-a-range", "0 0 12 1-5W * ?", "W (nearest weekday) follows one day"),
    ("nearest-weekday-of-a-step", "0 0 12 1/5W * ?", "never a range, step or *"),
    ("nearest-weekday-of-every-day", "0 0 12 *W * ?", "never a range, step or *"),
    ("nearest-weekday-alone", "0 0 12 W * ?", "W (nearest weekday) follows one day"),
    ("nearest-weekday-croniter-spelling", "0 0 12 W15 * ?", "W (nearest weekday) follows one day"),
    ("nearest-weekday-of-day-0", "0 0 12 0W * ?", "day-of-month 0 is out of range 1-31"),
    ("nearest-weekday-of-day-32", "0 0 12 32W * ?", "day-of-month 32 is out of range 1-31"),
    ("days-before-end-over-30", "0 0 12 L-31 * ?", "at most 30 days before the last day"),
    ("days-before-end-empty", "0 0 12 L- * ?", "'L-' is not valid in the day-of-month field"),
    ("nearest-weekday-in-day-of-week", "0 0 12 ? * 2W", "not valid in the day-of-week"),
    ("days-before-end-in-day-of-week", "0 0 12 ? * L-2", "not valid in the day-of-week"),
    ("nearest-weekday-with-a-weekday", "0 0 15W * MON", "put * in the day-of-week field"),
    ("days-before-end-with-a-weekday", "0 0 L-2 * 1-5", "put * in the day-of-week field"),
    ("quartz-nearest-weekday-and-weekday", "0 0 12 LW * MON", "put ? in one of them"),
    ("year-before-1970", "0 0 12 * * ? 1969", "year 1969 is out of range 1970-2099"),
    ("year-after-2099", "0 0 12 * * ? 2100", "year 2100 is out of range 1970-2099"),
    ("year-range-backwards", "0 0 12 * * ? 2030-2026", "runs backwards: write 2026-2030"),
    ("year-step-0", "0 0 12 * * ? 2026/0", "a step of 0 in the year field"),
    ("year-question-mark", "0 0 12 * * ? ?", "'?' is not valid in the year field"),
    ("year-last", "0 0 12 * * ? L", "'L' is not valid in the year field"),
    ("two-digit-year", "0 0 12 * * ? 26", "year 26 is out of range 1970-2099"),
    ("quartz-calendar", "0 0 12 5C * ?", "'5C' is not valid in the day-of-month field"),
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
    # W: 2026-08-01 is a Saturday, 2026-02-15 a Sunday, 2026-08-15 a Saturday, 2026-05-31 a
    # Sunday, 2026-01-31 a Saturday.
    (
        "nearest-weekday-1st-on-a-saturday-is-monday-the-3rd",
        "0 0 12 1W 8 ? 2026",
        ["2026-08-03 12:00:00"],
    ),
    (
        "nearest-weekday-15th",
        "0 0 12 15W * ?",
        # Thursday 15 January; Sunday 15 February -> Monday 16th; Sunday 15 March -> 16th.
        ["2026-01-15 12:00:00", "2026-02-16 12:00:00", "2026-03-16 12:00:00"],
    ),
    ("nearest-weekday-saturday-15th-is-friday", "0 0 12 15W 8 ?", ["2026-08-14 12:00:00"]),
    (
        "nearest-weekday-31st-on-a-sunday-is-friday-the-29th",
        "0 0 12 31W 5 ?",
        ["2026-05-29 12:00:00", "2027-05-31 12:00:00"],
    ),
    (
        "nearest-weekday-31st-skips-shorter-months",
        "0 0 12 31W * ?",
        # 31 January is a Saturday: Friday the 30th. No 31st in February or April.
        ["2026-01-30 12:00:00", "2026-03-31 12:00:00", "2026-05-29 12:00:00"],
    ),
    (
        "standard-nearest-weekday",
        "0 9 1W * *",
        ["2026-01-01 09:00:00", "2026-02-02 09:00:00", "2026-03-02 09:00:00"],
    ),
    (
        "last-weekday",
        "0 0 12 LW * ?",
        # Saturday 31 January -> Friday 30th; Saturday 28 February -> 27th; Tuesday 31 March.
        ["2026-01-30 12:00:00", "2026-02-27 12:00:00", "2026-03-31 12:00:00"],
    ),
    ("last-weekday-on-a-sunday", "0 0 12 LW 5 ?", ["2026-05-29 12:00:00"]),
    (
        "days-before-end",
        "0 0 12 L-3 * ?",
        ["2026-01-28 12:00:00", "2026-02-25 12:00:00", "2026-03-28 12:00:00"],
    ),
    (
        "days-before-end-in-a-leap-february",
        "0 0 12 L-1 2 ?",
        ["2026-02-27 12:00:00", "2027-02-27 12:00:00", "2028-02-28 12:00:00"],
    ),
    (
        "days-before-end-skips-short-months",
        "0 0 12 L-30 * ?",
        # Only a 31-day month has a day 30 days before its last: its 1st.
        ["2026-01-01 12:00:00", "2026-03-01 12:00:00", "2026-05-01 12:00:00"],
    ),
    ("days-before-end-0-is-the-last-day", "0 0 12 L-0 2 ?", ["2026-02-28 12:00:00"]),
    (
        "weekday-nearest-days-before-end",
        "0 0 12 L-2W * ?",
        # 29 January is a Thursday; 26 February a Thursday; 29 March a Sunday -> Monday 30th.
        ["2026-01-29 12:00:00", "2026-02-26 12:00:00", "2026-03-30 12:00:00"],
    ),
    (
        "nearest-weekday-in-a-list",
        "0 0 12 1W,15W,L * ?",
        ["2026-01-01 12:00:00", "2026-01-15 12:00:00", "2026-01-31 12:00:00"],
    ),
    (
        "days-before-end-with-a-range",
        "0 0 12 1-2,L-1 * ?",
        ["2026-01-01 12:00:00", "2026-01-02 12:00:00", "2026-01-30 12:00:00"],
    ),
    ("year", "0 0 12 1 1 ? 2030", ["2030-01-01 12:00:00"]),
    (
        "year-list-and-range",
        "0 0 12 1 1 ? 2027,2030-2031",
        ["2027-01-01 12:00:00", "2030-01-01 12:00:00", "2031-01-01 12:00:00"],
    ),
    (
        "year-step",
        "0 0 12 1 1 ? 2026/4",
        ["2026-01-01 12:00:00", "2030-01-01 12:00:00", "2034-01-01 12:00:00"],
    ),
    ("year-every-5-from-1970", "0 0 12 1 1 ? */5", ["2030-01-01 12:00:00"]),
    ("year-decades-ahead", "0 0 12 ? * 6L 2090", ["2090-01-27 12:00:00"]),
    (
        "year-with-last-weekday",
        "0 30 17 LW 12 ? 2026-2099",
        ["2026-12-31 17:30:00", "2027-12-31 17:30:00", "2028-12-29 17:30:00"],
    ),
    ("leap-day-in-a-leap-year", "0 0 0 29 2 ? 2027-2030", ["2028-02-29 00:00:00"]),
    ("all-years-is-every-year", "0 0 12 1 1 ? 1970-2099", ["2026-01-01 12:00:00"]),
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
    ("expression", "now", "reason"),
    [
        ("0 0 12 * * ? 2020", NOW, "2020, its last year, is past"),
        ("0 0 12 * * ? 2000-2010,2025", NOW, "2025, its last year, is past"),
        ("0 0 12 1 1 ? 2026", datetime(2026, 1, 2, tzinfo=UTC), "to the end of 2026"),
        ("0 0 0 29 2 ? 2027,2029-2031", NOW, "to the end of 2031"),
    ],
    ids=["past-year", "past-years", "last-occurrence-past", "no-leap-year"],
)
def test_an_expression_whose_years_are_over_is_refused(
    expression: str, now: datetime, reason: str
) -> None:
    with pytest.raises(schedule.InvalidSchedule, match="never fires again") as caught:
        schedule.normalise(schedule.Cron(expression=expression), now)
    assert caught.value.field == "schedule.expression"
    assert reason in str(caught.value)


def test_an_expression_in_a_named_year_decades_ahead_is_accepted() -> None:
    # Other expressions are refused without a fire within 10 years; one naming its years is
    # bounded by them instead.
    s = schedule.normalise(schedule.Cron(expression="0 0 12 1 1 ? 2090"), NOW)
    assert schedule.preview(s, NOW, 2) == [datetime(2090, 1, 1, 12, tzinfo=UTC)]


WILDCARD_HOURS = [
    # (id, expression, whether its hour field is a wildcard: it fires in both passes)
    ("star", "*/30 * * * *", True),
    ("star-step", "0 */2 * * *", True),
    ("star-in-a-list", "0 *,5 * * *", True),
    ("hourly-macro", "@hourly", True),
    ("quartz-star", "0/10 * * * * ?", True),
    ("quartz-step-from-0", "0 0 0/2 * * ?", True),
    ("quartz-star-with-year", "0 0 * ? * MON 2027", True),
    ("fixed-hour", "30 1 * * *", False),
    ("fixed-hour-every-minute", "* 1 * * *", False),
    ("fixed-hour-star-minutes", "*/15 1 * * *", False),
    ("quartz-fixed-hour-every-second", "* * 1 * * ?", False),
    ("list", "0 1,2 * * *", False),
    ("range", "0 1-3 * * *", False),
    ("range-of-every-hour", "0 0-23 * * *", False),
    ("range-with-a-step", "0 0-23/2 * * *", False),
    ("step-from-1", "0 0 1/2 * * ?", False),
    ("daily-macro", "@daily", False),
]


@pytest.mark.parametrize(
    ("expression", "wildcard"),
    [w[1:] for w in WILDCARD_HOURS],
    ids=[w[0] for w in WILDCARD_HOURS],
)
def test_wildcard_hour(expression: str, wildcard: bool) -> None:
    assert cron.parse(expression).wildcard_hour is wildcard


@pytest.mark.parametrize(
    ("expression", "wall", "expected"),
    [
        ("0 0 12 LW * ?", datetime(2026, 1, 30, 12), True),
        ("0 0 12 LW * ?", datetime(2026, 1, 31, 12), False),
        ("0 0 12 LW * ?", datetime(2026, 1, 30, 12, 0, 1), False),
        ("0 0 12 * * ? 2027", datetime(2027, 3, 1, 12), True),
        ("0 0 12 * * ? 2027", datetime(2026, 3, 1, 12), False),
        ("*/5 * * * *", datetime(2026, 3, 1, 12, 5), True),
    ],
)
def test_matches(expression: str, wall: datetime, expected: bool) -> None:
    assert cron.matches(cron.parse(expression), wall) is expected


@pytest.mark.parametrize(
    "expression", ["0 0 15W * MON", "0 0 12 * * ? 2100", "61 * * * *"], ids=["W", "year", "range"]
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
    walls = cron.walls_after(cron.parse("0 0 0 LW 12 ?"), datetime(9998, 6, 1))
    assert list(walls) == [datetime(9998, 12, 31), datetime(9999, 12, 31)]


def test_walls_after_gives_up_on_a_day_that_never_comes() -> None:
    # February never has a day 30 days before its last: no fire, and no search to year 9999.
    assert list(cron.walls_after(cron.parse("0 0 12 L-30 2 ?"), datetime(2026, 1, 1))) == []
