"""Cron fires around the UTC offset changes of any zone, against the wall clock read by brute force.

Zones are drawn from all of `zoneinfo.available_timezones()` (three in four among those with DST
in the drawn year), years from 1990 to 2099, and the instant a job starts from within three hours
before or two hours after one of the zone's offset changes that year. For an expression firing
every day, the fires from that instant through the next four hours are exactly what reading the
wall clock minute by minute gives: the instants whose wall time the expression names, read in
both passes of a repeated hour when its hour field is a wildcard (`*`, `*/n`, `0/n`) and in the
first pass only otherwise, plus the end of each DST gap that swallowed a wall time it names.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from libs.scheduling import schedule

ZONES = sorted(zoneinfo.available_timezones() - schedule.NOT_ZONES)
YEARS = range(1990, 2100)
WINDOW = timedelta(hours=4)  # longer than any overlap in YEARS (2 hours: Antarctica/Troll)
MINUTE, SECOND, DAY = timedelta(minutes=1), timedelta(seconds=1), timedelta(days=1)

# Fields with the values they name, written out here rather than derived from libs.scheduling.cron.
WILDCARD_HOURS = {"*": set(range(24)), "*/2": set(range(0, 24, 2)), "0/3": set(range(0, 24, 3))}
MINUTES = {"0": {0}, "30": {30}, "*/15": {0, 15, 30, 45}, "*/20": {0, 20, 40}, "5,35": {5, 35}}
SECONDS = {"0": {0}, "30": {30}, "0/20": {0, 20, 40}}


def offset(instant: datetime, tz: ZoneInfo) -> timedelta:
    found = instant.astimezone(tz).utcoffset()
    assert found is not None  # a ZoneInfo always has one
    return found


@cache
def zone_info(name: str) -> ZoneInfo:
    return ZoneInfo(name)  # held: ZoneInfo's own cache would read most zones from disk again


@cache
def dst_zones(year: int) -> list[str]:
    """The zones whose UTC offset in January differs from July's in `year`."""
    january, july = datetime(year, 1, 1, tzinfo=UTC), datetime(year, 7, 1, tzinfo=UTC)
    return [z for z in ZONES if offset(january, zone_info(z)) != offset(july, zone_info(z))]


@cache
def changes(zone: str, year: int) -> tuple[datetime, ...]:
    """The instants in `year` at which `zone` changes its UTC offset, to the second."""
    tz, found = zone_info(zone), []
    day = datetime(year, 1, 1, tzinfo=UTC)
    while day.year == year:
        if offset(day, tz) != offset(day + DAY, tz):
            low, high = day, day + DAY  # old offset at low, new at high: bisect
            while high - low > SECOND:
                middle = low + (high - low) // 2 // SECOND * SECOND
                low, high = (
                    (middle, high) if offset(middle, tz) == offset(low, tz) else (low, middle)
                )
            found.append(high)
        day += DAY
    return tuple(found)


@dataclass(frozen=True)
class Case:
    """A cron schedule firing every day, the instant a job gets it, and what it names: the
    hours, minutes and seconds, and whether its hour is a wildcard (fires in both passes)."""

    schedule: schedule.Cron
    now: datetime
    hours: frozenset[int]
    minutes: frozenset[int]
    seconds: frozenset[int]
    both_passes: bool


@st.composite
def cases(draw: st.DrawFn) -> Case:
    year = draw(st.sampled_from(YEARS))
    # Three in four among the zones with DST that year, the rest among all.
    zone = draw(st.sampled_from(ZONES if draw(st.integers(0, 3)) == 0 else dst_zones(year)))
    tz = zone_info(zone)
    found = changes(zone, year)
    change = draw(st.sampled_from(found)) if found else datetime(year, 7, 1, tzinfo=UTC)
    # The wall clock is read minute by minute: offsets must be whole minutes (all are, since 1972).
    assume(offset(change, tz) % MINUTE == offset(change - DAY, tz) % MINUTE == timedelta(0))
    now = change + draw(st.integers(-3 * 3600, 2 * 3600)) * SECOND
    both_passes = draw(st.booleans())
    if both_passes:
        hour, hours = draw(st.sampled_from(sorted(WILDCARD_HOURS.items())))
    else:  # fixed hours: some the wall clock shows around the change, or all of them
        near = {(change + k * timedelta(minutes=30)).astimezone(tz).hour for k in range(-2, 5)}
        picked = draw(st.lists(st.sampled_from(sorted(near)), min_size=1, max_size=3, unique=True))
        hour, hours = draw(
            st.sampled_from(
                [
                    (",".join(map(str, sorted(picked))), set(picked)),
                    ("0-23", set(range(24))),
                    ("0-23/2", set(range(0, 24, 2))),
                ]
            )
        )
    minute, minutes = draw(st.sampled_from(sorted(MINUTES.items())))
    if draw(st.booleans()):
        expression, seconds = f"{minute} {hour} * * *", {0}
    else:
        second, seconds = draw(st.sampled_from(sorted(SECONDS.items())))
        expression = f"{second} {minute} {hour} * * ?"
    return Case(
        schedule.Cron(expression=expression, timezone=zone),
        now,
        frozenset(hours),
        frozenset(minutes),
        frozenset(seconds),
        both_passes,
    )


def read_wall_clock(case: Case, end: datetime) -> list[datetime]:
    """The fires in [case.now, end], reading the wall clock minute by minute."""
    tz = zone_info(case.schedule.timezone)

    def named(wall: datetime) -> bool:
        return (
            wall.hour in case.hours and wall.minute in case.minutes and wall.second in case.seconds
        )

    found: set[datetime] = set()
    minute = case.now.replace(second=0, microsecond=0)
    while minute <= end:
        for second in case.seconds:
            instant = minute + second * SECOND
            local = instant.astimezone(tz)
            if case.now <= instant <= end and named(local):
                if local.fold == 0 or case.both_passes:
                    found.add(instant)
                if local.fold == 1:
                    event("a wall time the expression names, repeated")
        minute += MINUTE
    for change in {
        *changes(case.schedule.timezone, case.now.year),
        *changes(case.schedule.timezone, end.year),
    }:
        old, new = offset(change - SECOND, tz), offset(change, tz)
        if case.now <= change <= end and new > old:  # a gap: its wall times fire when it ends
            gap = (change + old).replace(tzinfo=None)
            steps = (new - old) // MINUTE
            if any(
                named(gap + m * MINUTE + sec * SECOND) for m in range(steps) for sec in case.seconds
            ):
                event("a wall time the expression names, in a gap")
                found.add(change)
    return sorted(found)


@settings(max_examples=150, deadline=None)
@given(case=cases())
def test_fires_around_offset_changes_are_the_wall_times_named(case: Case) -> None:
    end = case.now + WINDOW
    fires: list[datetime] = []
    fire = schedule.first_fire(case.schedule, case.now)
    while fire is not None and fire <= end:
        fires.append(fire)
        fire = schedule.next_fire(case.schedule, after=fire, runs=len(fires))
    assert fires == read_wall_clock(case, end)
