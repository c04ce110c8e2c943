"""libs.scheduling.schedule by named edge cases: DST gaps and overlaps, month ends, leap days,
drift, bounds, and the validation a job's schedule goes through when it is written.

Expected fire times are written in UTC with the local wall time beside them. 2026 transitions:
Europe/London springs forward 01:00 -> 02:00 on 29 March and falls back 02:00 -> 01:00 on
25 October; America/New_York springs 02:00 -> 03:00 on 8 March, falls 02:00 -> 01:00 on 1 November;
Australia/Lord_Howe falls back 30 minutes, 02:00 (+11) -> 01:30 (+10:30), on 5 April (15:00 UTC
on the 4th); Antarctica/Troll springs forward two hours, 01:00 (+00) -> 03:00 (+02), on 29 March
and falls back two hours, 03:00 -> 01:00, on 25 October (both at 01:00 UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from libs.scheduling import schedule


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def spaced(first: datetime, minutes: int, count: int) -> list[datetime]:
    """`count` instants `minutes` apart from `first`: a frequent job keeping its UTC spacing."""
    return [first + timedelta(minutes=minutes * k) for k in range(count)]


def fires(s: schedule.Schedule, now: datetime, count: int) -> list[datetime]:
    return schedule.preview(schedule.normalise(s, now), now, count)


LONDON, NEW_YORK = "Europe/London", "America/New_York"
LORD_HOWE, TROLL = "Australia/Lord_Howe", "Antarctica/Troll"

CRON_DST = [
    # (id, zone, expression, now, expected fires)
    (
        "london-gap-daily-0130",
        LONDON,
        "30 1 * * *",
        utc(2026, 3, 28, 12),
        # 01:30 does not exist on the 29th: the first instant after the gap, 02:00 BST.
        [utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)],
    ),
    (
        "london-overlap-daily-0130",
        LONDON,
        "30 1 * * *",
        utc(2026, 10, 24, 12),
        # 01:30 happens twice on the 25th: once, at 01:30 BST; then 01:30 GMT the next day.
        [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)],
    ),
    (
        "london-overlap-daily-0230-unaffected",
        LONDON,
        "30 2 * * *",
        utc(2026, 10, 24, 12),
        [utc(2026, 10, 25, 2, 30), utc(2026, 10, 26, 2, 30)],
    ),
    (
        "london-gap-every-30-minutes",
        LONDON,
        "*/30 * * * *",
        utc(2026, 3, 29, 0, 45),
        # 01:00 and 01:30 fall in the gap and 02:00 BST is its end: one fire, then 02:30 BST.
        [utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 2, 0)],
    ),
    (
        "london-gap-weekly-sunday-0130",
        LONDON,
        "30 1 * * SUN",
        utc(2026, 3, 23),
        [utc(2026, 3, 29, 1, 0), utc(2026, 4, 5, 0, 30)],
    ),
    (
        "london-overlap-weekly-sunday-0130",
        LONDON,
        "30 1 * * SUN",
        utc(2026, 10, 19),
        [utc(2026, 10, 25, 0, 30), utc(2026, 11, 1, 1, 30)],
    ),
    (
        "new-york-gap-daily-0230",
        NEW_YORK,
        "30 2 * * *",
        utc(2026, 3, 7, 12),
        # 02:30 does not exist on the 8th: 03:00 EDT. Before it 02:30 EST, after it 02:30 EDT.
        [utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 30)],
    ),
    (
        "new-york-overlap-daily-0130",
        NEW_YORK,
        "30 1 * * *",
        utc(2026, 10, 31, 12),
        # croniter alone fires at 05:30 and 06:30 UTC on 1 November; this fires once.
        [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)],
    ),
    (
        "new-york-overlap-every-30-minutes",
        NEW_YORK,
        "*/30 * * * *",
        utc(2026, 11, 1, 4, 45),
        # A wildcard hour: 01:00 and 01:30 fire in both passes, EDT then EST, 30 minutes apart.
        spaced(utc(2026, 11, 1, 5, 0), 30, 5),
    ),
    (
        "london-overlap-every-30-minutes",
        LONDON,
        "*/30 * * * *",
        utc(2026, 10, 24, 23, 45),
        # 01:00, 01:30 BST, then 01:00, 01:30 GMT: no 90-minute hole on the night clocks go back.
        spaced(utc(2026, 10, 25, 0, 0), 30, 5),
    ),
    (
        "london-overlap-hourly",
        LONDON,
        "0 * * * *",
        utc(2026, 10, 24, 22, 30),
        spaced(utc(2026, 10, 24, 23, 0), 60, 4),
    ),
    (
        "london-overlap-quartz-every-20-minutes",
        LONDON,
        "0 0/20 * * * ?",
        utc(2026, 10, 25, 0, 30),
        # 01:40 BST, then the second pass from 01:00 GMT.
        [utc(2026, 10, 25, 0, 40), utc(2026, 10, 25, 1, 0), utc(2026, 10, 25, 1, 20)],
    ),
    (
        "london-overlap-quartz-hour-step-from-0",
        LONDON,
        "0 30 0/1 * * ?",
        utc(2026, 10, 24, 23, 45),
        [utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30), utc(2026, 10, 25, 2, 30)],
    ),
    (
        "london-overlap-fixed-hour-every-15-minutes",
        LONDON,
        "*/15 1 * * *",
        utc(2026, 10, 24, 23, 45),
        # A fixed hour fires once: 01:00-01:45 BST, then 01:00 GMT the next day.
        [*spaced(utc(2026, 10, 25, 0, 0), 15, 4), utc(2026, 10, 26, 1, 0)],
    ),
    (
        "london-overlap-range-of-every-hour-is-a-fixed-hour",
        LONDON,
        "0 0-23 * * *",
        utc(2026, 10, 24, 23, 30),
        [utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 2, 0)],
    ),
    (
        "troll-2-hour-overlap-hourly",
        TROLL,
        "0 * * * *",
        utc(2026, 10, 24, 22, 30),
        # 01:00 and 02:00 (+02), then 01:00, 02:00 and 03:00 (+00): an hour apart throughout.
        spaced(utc(2026, 10, 24, 23, 0), 60, 5),
    ),
    (
        "troll-2-hour-overlap-fixed-hour",
        TROLL,
        "30 1 * * *",
        utc(2026, 10, 24, 22, 30),
        [utc(2026, 10, 24, 23, 30), utc(2026, 10, 26, 1, 30)],
    ),
    (
        "troll-2-hour-gap-hourly",
        TROLL,
        "0 * * * *",
        utc(2026, 3, 29, 0, 30),
        # 01:00 and 02:00 (+00) do not exist: one fire when the gap ends (03:00 +02), then 04:00.
        [utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 2, 0)],
    ),
    (
        "lord-howe-30-minute-overlap-every-15-minutes",
        LORD_HOWE,
        "*/15 * * * *",
        utc(2026, 4, 4, 14, 20),
        # 01:30, 01:45 (+11), again at 01:30, 01:45 (+10:30), then 02:00: 15 minutes apart.
        spaced(utc(2026, 4, 4, 14, 30), 15, 5),
    ),
    (
        "lord-howe-30-minute-overlap-fixed-hour",
        LORD_HOWE,
        "*/15 1 * * *",
        utc(2026, 4, 4, 14, 20),
        [utc(2026, 4, 4, 14, 30), utc(2026, 4, 4, 14, 45), utc(2026, 4, 5, 14, 30)],
    ),
    (
        "new-york-gap-weekly-sunday-0230",
        NEW_YORK,
        "30 2 * * 0",
        utc(2026, 3, 2),
        [utc(2026, 3, 8, 7, 0), utc(2026, 3, 15, 6, 30)],
    ),
    (
        "new-york-overlap-quartz-seconds",
        NEW_YORK,
        "30 30 1 ? * *",
        utc(2026, 10, 31, 12),
        [utc(2026, 11, 1, 5, 30, 30), utc(2026, 11, 2, 6, 30, 30)],
    ),
]


@pytest.mark.parametrize(
    ("zone", "expression", "now", "expected"),
    [c[1:] for c in CRON_DST],
    ids=[c[0] for c in CRON_DST],
)
def test_cron_across_dst(zone: str, expression: str, now: datetime, expected: list) -> None:
    assert (
        fires(schedule.Cron(expression=expression, timezone=zone), now, len(expected)) == expected
    )


def test_cron_resumed_inside_the_repeated_hour_does_not_fire_it_again() -> None:
    s = schedule.Cron(expression="*/30 1-2 * * *", timezone=NEW_YORK)
    # 01:15 EST, the second pass: 01:30 already fired in the first pass (05:30 UTC).
    assert schedule.next_fire(s, after=utc(2026, 11, 1, 6, 15), runs=0) == utc(2026, 11, 1, 7)


def test_cron_every_second_resumed_inside_the_repeated_hour_skips_to_its_end() -> None:
    s = schedule.Cron(expression="* * 1-2 * * ?", timezone=NEW_YORK)
    # 01:00:30 EST: every second up to 01:59:59 already fired, an hour earlier (EDT).
    assert schedule.next_fire(s, after=utc(2026, 11, 1, 6, 0, 30), runs=0) == utc(2026, 11, 1, 7)


@pytest.mark.parametrize(
    ("zone", "expression", "after", "expected"),
    [
        # 01:15 EST, in the second pass: its 01:30 comes next.
        (NEW_YORK, "*/30 * * * *", utc(2026, 11, 1, 6, 15), utc(2026, 11, 1, 6, 30)),
        (NEW_YORK, "* * * * * ?", utc(2026, 11, 1, 6, 0, 30), utc(2026, 11, 1, 6, 0, 31)),
        # 01:45 EDT, the end of the first pass: the second begins at 01:00 EST.
        (NEW_YORK, "*/30 * * * *", utc(2026, 11, 1, 5, 45), utc(2026, 11, 1, 6, 0)),
        # 02:30 (+02), the first pass: next is 01:00 (+00), the second pass's first hour.
        (TROLL, "0 * * * *", utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 0)),
        # 01:40 (+10:30), the second pass: 01:45 again.
        (LORD_HOWE, "*/15 * * * *", utc(2026, 4, 4, 15, 10), utc(2026, 4, 4, 15, 15)),
    ],
    ids=[
        "new-york-second-pass",
        "new-york-every-second",
        "new-york-end-of-first-pass",
        "troll-first-pass",
        "lord-howe-second-pass",
    ],
)
def test_wildcard_hour_cron_resumed_around_the_repeated_hour(
    zone: str, expression: str, after: datetime, expected: datetime
) -> None:
    s = schedule.Cron(expression=expression, timezone=zone)
    assert schedule.next_fire(s, after=after, runs=0) == expected


CALENDAR = [
    # (id, zone, every, unit, anchor, expected fires from the anchor)
    (
        "london-gap-daily-0130",
        LONDON,
        1,
        "days",
        utc(2026, 3, 28, 1, 30),
        [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)],
    ),
    (
        "london-overlap-daily-0130",
        LONDON,
        1,
        "days",
        utc(2026, 10, 24, 0, 30),
        [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)],
    ),
    (
        "london-gap-weekly-0130",
        LONDON,
        1,
        "weeks",
        utc(2026, 3, 22, 1, 30),
        [utc(2026, 3, 22, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 4, 5, 0, 30)],
    ),
    (
        "new-york-gap-daily-0230",
        NEW_YORK,
        1,
        "days",
        utc(2026, 3, 7, 7, 30),
        [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 30)],
    ),
    (
        "new-york-overlap-daily-0130",
        NEW_YORK,
        1,
        "days",
        utc(2026, 10, 31, 5, 30),
        [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)],
    ),
    (
        "new-york-overlap-weekly-0130",
        NEW_YORK,
        1,
        "weeks",
        utc(2026, 10, 25, 5, 30),
        [utc(2026, 10, 25, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 8, 6, 30)],
    ),
    (
        "lord-howe-30-minute-gap",
        LORD_HOWE,
        1,
        "days",
        # 02:15 local (+10:30); on 4 October clocks go 02:00 -> 02:30 (+11).
        utc(2026, 10, 2, 15, 45),
        [utc(2026, 10, 2, 15, 45), utc(2026, 10, 3, 15, 30), utc(2026, 10, 4, 15, 15)],
    ),
    (
        "leap-day-every-12-months",
        "UTC",
        12,
        "months",
        utc(2024, 2, 29, 9),
        [
            utc(2024, 2, 29, 9),
            utc(2025, 2, 28, 9),
            utc(2026, 2, 28, 9),
            utc(2027, 2, 28, 9),
            utc(2028, 2, 29, 9),
        ],
    ),
    (
        "31st-of-short-months",
        "UTC",
        1,
        "months",
        utc(2026, 1, 31, 9),
        [utc(2026, 1, 31, 9), utc(2026, 2, 28, 9), utc(2026, 3, 31, 9), utc(2026, 4, 30, 9)],
    ),
    (
        "31st-in-a-leap-year",
        "UTC",
        1,
        "months",
        utc(2028, 1, 31, 9),
        [utc(2028, 1, 31, 9), utc(2028, 2, 29, 9), utc(2028, 3, 31, 9)],
    ),
    (
        "every-2-months-from-the-31st",
        "UTC",
        2,
        "months",
        utc(2025, 12, 31, 9),
        [utc(2025, 12, 31, 9), utc(2026, 2, 28, 9), utc(2026, 4, 30, 9), utc(2026, 6, 30, 9)],
    ),
    (
        "leap-day-every-year",
        "UTC",
        1,
        "years",
        utc(2024, 2, 29, 9),
        # 29 February becomes 28 February in other years, as the 31st does in shorter months.
        [
            utc(2024, 2, 29, 9),
            utc(2025, 2, 28, 9),
            utc(2026, 2, 28, 9),
            utc(2027, 2, 28, 9),
            utc(2028, 2, 29, 9),
        ],
    ),
    (
        "leap-day-every-4-years",
        "UTC",
        4,
        "years",
        utc(2024, 2, 29, 9),
        [utc(2024, 2, 29, 9), utc(2028, 2, 29, 9), utc(2032, 2, 29, 9)],
    ),
    (
        "every-year-keeps-the-wall-clock-time",
        LONDON,
        1,
        "years",
        # 01:30 GMT on 28 March 2026; in 2027 clocks spring forward that night (01:30 is in the
        # gap: 02:00 BST); in 2028 it is summer time.
        utc(2026, 3, 28, 1, 30),
        [utc(2026, 3, 28, 1, 30), utc(2027, 3, 28, 1, 0), utc(2028, 3, 28, 0, 30)],
    ),
    (
        "every-2-years-in-local-time",
        "Pacific/Chatham",
        2,
        "years",
        # 1 January 10:00 local (+13:45) is still 31 December in UTC.
        utc(2025, 12, 31, 20, 15),
        [utc(2025, 12, 31, 20, 15), utc(2027, 12, 31, 20, 15), utc(2029, 12, 31, 20, 15)],
    ),
    (
        "month-end-in-local-time",
        "Pacific/Chatham",
        1,
        "months",
        # 31 January 10:00 local (+13:45) is still 30 January in UTC.
        utc(2026, 1, 30, 20, 15),
        [utc(2026, 1, 30, 20, 15), utc(2026, 2, 27, 20, 15), utc(2026, 3, 30, 20, 15)],
    ),
]


@pytest.mark.parametrize(
    ("zone", "every", "unit", "anchor", "expected"),
    [c[1:] for c in CALENDAR],
    ids=[c[0] for c in CALENDAR],
)
def test_calendar(zone: str, every: int, unit: Any, anchor: datetime, expected: list) -> None:
    s = schedule.Calendar(every=every, unit=unit, anchor=anchor, timezone=zone)
    assert fires(s, anchor, len(expected)) == expected


def test_calendar_anchored_in_the_repeated_hour_waits_for_the_next_day() -> None:
    # 01:30 EST, the second pass: 01:30 already happened once that day, at 01:30 EDT.
    anchor = utc(2026, 11, 1, 6, 30)
    s = schedule.Calendar(every=1, unit="days", anchor=anchor, timezone=NEW_YORK)
    assert fires(s, anchor, 1) == [utc(2026, 11, 2, 6, 30)]


def test_calendar_every_1000_years_ends_with_the_calendar() -> None:
    s = schedule.Calendar(every=1000, unit="years", anchor=utc(2026, 6, 1))
    assert schedule.preview(s, utc(2026, 6, 1), 20)[-1] == utc(9026, 6, 1)


def test_calendar_years_count_from_the_anchor_after_a_long_pause() -> None:
    s = schedule.Calendar(every=1, unit="years", anchor=utc(2024, 2, 29, 9))
    assert schedule.next_fire(s, after=utc(2031, 5, 1), runs=5) == utc(2032, 2, 29, 9)
    assert schedule.next_fire(s, after=utc(2032, 2, 29, 9), runs=6) == utc(2033, 2, 28, 9)


def test_calendar_months_count_from_the_anchor_after_a_long_pause() -> None:
    s = schedule.Calendar(every=1, unit="months", anchor=utc(2026, 1, 31, 9))
    assert schedule.next_fire(s, after=utc(2030, 2, 10), runs=5) == utc(2030, 2, 28, 9)
    assert schedule.next_fire(s, after=utc(2030, 2, 28, 9), runs=6) == utc(2030, 3, 31, 9)


# --- once ------------------------------------------------------------------------------------

NOW = utc(2026, 6, 1, 12)


@pytest.mark.parametrize(
    ("seconds_ago", "accepted"),
    [(0, True), (59, True), (60, True), (61, False), (3600, False)],
    ids=["now", "59s-ago", "60s-ago", "61s-ago", "an-hour-ago"],
)
def test_once_in_the_past(seconds_ago: int, accepted: bool) -> None:
    s = schedule.Once(at=NOW - timedelta(seconds=seconds_ago))
    if accepted:
        assert schedule.first_fire(schedule.normalise(s, NOW), NOW) == s.at
    else:
        with pytest.raises(schedule.InvalidSchedule, match="in the past") as caught:
            schedule.normalise(s, NOW)
        assert caught.value.field == "schedule.at"


def test_once_defaults_to_now_and_fires_once() -> None:
    s = schedule.normalise(schedule.Once(), NOW)
    assert isinstance(s, schedule.Once) and s.at == NOW
    assert schedule.preview(s, NOW, 5) == [NOW]
    assert schedule.next_fire(s, after=NOW, runs=1) is None


def test_once_before_start_at_is_refused() -> None:
    s = schedule.Once(at=NOW + timedelta(hours=1), start_at=NOW + timedelta(hours=2))
    with pytest.raises(schedule.InvalidSchedule) as caught:
        schedule.normalise(s, NOW)
    assert caught.value.field == "schedule.at"


def test_once_after_end_at_is_refused() -> None:
    s = schedule.Once(at=NOW + timedelta(hours=2), end_at=NOW + timedelta(hours=1))
    with pytest.raises(schedule.InvalidSchedule) as caught:
        schedule.normalise(s, NOW)
    assert caught.value.field == "schedule.end_at"


# --- fixed rate and fixed delay --------------------------------------------------------------


def test_fixed_rate_does_not_drift() -> None:
    anchor = utc(2026, 1, 1, 0, 0, 0, 123456)
    s = schedule.FixedRate(interval_s=7, anchor=anchor)
    preview = schedule.preview(s, anchor, 1000)
    assert preview[999] == anchor + 999 * timedelta(seconds=7)
    # However late the previous run ended, the next fire is on the anchor's grid.
    late = anchor + timedelta(days=3, seconds=5, microseconds=17)
    following = schedule.next_fire(s, after=late, runs=10, last_finished_at=late)
    assert following is not None
    assert (following - anchor) % timedelta(seconds=7) == timedelta(0)
    assert timedelta(0) < following - late <= timedelta(seconds=7)


@pytest.mark.parametrize(
    ("anchor", "start_at", "now", "first"),
    [
        (None, None, NOW, NOW),
        (None, NOW + timedelta(hours=1), NOW, NOW + timedelta(hours=1)),
        (NOW + timedelta(minutes=7), None, NOW, NOW + timedelta(minutes=7)),
        (NOW - timedelta(seconds=150), None, NOW, NOW + timedelta(seconds=30)),
        (NOW - timedelta(seconds=180), None, NOW, NOW),
        (NOW, NOW + timedelta(seconds=61), NOW, NOW + timedelta(seconds=120)),
    ],
    ids=[
        "anchor-defaults-to-now",
        "anchor-defaults-to-start",
        "future-anchor",
        "between-ticks",
        "on-a-tick",
        "start-between-ticks",
    ],
)
def test_fixed_rate_first_fire(
    anchor: datetime | None, start_at: datetime | None, now: datetime, first: datetime
) -> None:
    s = schedule.FixedRate(interval_s=60, anchor=anchor, start_at=start_at)
    assert schedule.first_fire(schedule.normalise(s, now), now) == first


def test_fixed_delay_counts_from_the_end_of_the_previous_run() -> None:
    s = schedule.normalise(schedule.FixedDelay(delay_s=30), NOW)
    assert schedule.first_fire(s, NOW) == NOW
    finished = NOW + timedelta(seconds=95)
    assert schedule.next_fire(s, after=NOW, runs=1, last_finished_at=finished) == finished + (
        timedelta(seconds=30)
    )
    assert schedule.next_fire(s, after=NOW, runs=1) == NOW + timedelta(seconds=30)
    # A finish reported before the start (clock skew) never moves the next run before it.
    early = NOW - timedelta(seconds=5)
    assert schedule.next_fire(s, after=NOW, runs=1, last_finished_at=early) == NOW + timedelta(
        seconds=30
    )


def test_fixed_delay_starts_at_start_at() -> None:
    start = NOW + timedelta(days=1)
    s = schedule.normalise(schedule.FixedDelay(delay_s=30, start_at=start), NOW)
    assert schedule.preview(s, NOW, 3) == [start + timedelta(seconds=30 * i) for i in range(3)]


# --- start, end, max_runs --------------------------------------------------------------------

BOUNDED = [
    ("cron", schedule.Cron(expression="0 * * * *")),
    ("fixed-rate", schedule.FixedRate(interval_s=3600)),
    ("fixed-delay", schedule.FixedDelay(delay_s=3600)),
    ("calendar", schedule.Calendar(every=1, unit="days")),
]


@pytest.mark.parametrize("s", [b[1] for b in BOUNDED], ids=[b[0] for b in BOUNDED])
def test_max_runs_caps_every_kind(s: schedule.Schedule) -> None:
    s = schedule.normalise(s.model_copy(update={"max_runs": 3}), NOW)
    assert len(schedule.preview(s, NOW, 10)) == 3
    assert schedule.next_fire(s, after=NOW, runs=3) is None
    assert schedule.next_fire(s, after=NOW, runs=2) is not None


@pytest.mark.parametrize("s", [b[1] for b in BOUNDED], ids=[b[0] for b in BOUNDED])
def test_start_and_end_are_inclusive_for_every_kind(s: schedule.Schedule) -> None:
    start, end = NOW + timedelta(days=2), NOW + timedelta(days=4)
    s = schedule.normalise(s.model_copy(update={"start_at": start, "end_at": end}), NOW)
    preview = schedule.preview(s, NOW, 1000)
    assert preview[0] == start
    assert preview[-1] == end
    assert schedule.next_fire(s, after=end, runs=1) is None


def test_end_at_before_start_at_is_refused() -> None:
    s = schedule.Cron(expression="* * * * *", start_at=NOW, end_at=NOW)
    with pytest.raises(schedule.InvalidSchedule, match="after start_at") as caught:
        schedule.normalise(s, NOW)
    assert caught.value.field == "schedule.end_at"


def test_a_schedule_ending_before_its_first_fire_is_refused() -> None:
    s = schedule.Cron(expression="0 12 * * *", end_at=NOW + timedelta(minutes=30))
    with pytest.raises(schedule.InvalidSchedule) as caught:
        schedule.normalise(s, NOW + timedelta(minutes=1))
    assert caught.value.field == "schedule.end_at"


# --- models ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"kind": "cron", "expression": "* * * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"kind": "cron", "expression": "* * * * *", "timezone": "localtime"}, "timezone"),
        ({"kind": "cron", "expression": "* * * * *", "timezone": "../etc/passwd"}, "timezone"),
        ({"kind": "once", "at": "2026-06-01T12:00:00"}, "at"),
        ({"kind": "fixed_rate", "interval_s": 60, "anchor": "2026-06-01T12:00"}, "anchor"),
        ({"kind": "cron", "expression": "* * * * *", "start_at": "2026-06-01 12:00"}, "start_at"),
        ({"kind": "cron", "expression": "0 0 * * *\x00"}, "expression"),
        ({"kind": "cron", "expression": ""}, "expression"),
        ({"kind": "fixed_rate", "interval_s": 0}, "interval_s"),
        ({"kind": "fixed_delay", "delay_s": 366 * 86400 + 1}, "delay_s"),
        ({"kind": "calendar", "every": 1, "unit": "fortnights"}, "unit"),
        ({"kind": "calendar", "every": 0, "unit": "days"}, "every"),
        ({"kind": "once", "max_runs": 0}, "max_runs"),
        ({"kind": "once", "run_at": "2026-06-01T12:00:00Z"}, "run_at"),
        ({"kind": "yearly"}, None),
        ({"expression": "* * * * *"}, None),
    ],
    ids=[
        "unknown-zone",
        "host-zone",
        "path-as-zone",
        "naive-at",
        "naive-anchor",
        "naive-start",
        "nul-byte",
        "empty-expression",
        "zero-interval",
        "delay-over-a-year",
        "unknown-unit",
        "every-zero",
        "max-runs-zero",
        "unknown-field",
        "unknown-kind",
        "no-kind",
    ],
)
def test_refused_bodies_name_the_field(body: dict[str, Any], loc: str | None) -> None:
    with pytest.raises(ValidationError) as caught:
        schedule.SCHEDULE_ADAPTER.validate_python(body)
    if loc is not None:
        assert caught.value.errors()[0]["loc"][-1] == loc


def test_datetimes_are_stored_in_utc() -> None:
    s = schedule.SCHEDULE_ADAPTER.validate_json(
        '{"kind": "once", "at": "2026-06-01T14:00:00+02:00", "timezone": "Europe/Paris"}'
    )
    assert isinstance(s, schedule.Once) and s.at == NOW and s.at.tzinfo is UTC


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        schedule.first_fire(schedule.Once(), datetime(2026, 6, 1))


def test_preview_count_is_bounded() -> None:
    s = schedule.FixedRate(interval_s=1)
    for count in (0, 1001):
        with pytest.raises(schedule.InvalidSchedule) as caught:
            schedule.preview(s, NOW, count)
        assert caught.value.field == "count"
    assert len(schedule.preview(s, NOW, 1000)) == 1000


def test_normalise_returns_a_new_model() -> None:
    original = schedule.FixedRate(interval_s=60)
    normalised = schedule.normalise(original, NOW)
    assert original.anchor is None
    assert isinstance(normalised, schedule.FixedRate) and normalised.anchor == NOW


def test_next_fire_needs_an_anchor() -> None:
    with pytest.raises(ValueError, match="normalise"):
        schedule.next_fire(schedule.FixedRate(interval_s=60), after=NOW, runs=0)
