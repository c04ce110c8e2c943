"""Properties of libs.scheduling.schedule over random schedules, zones and instants (2000-2100).

For every kind, the fires a job would get (first_fire, then next_fire after each) strictly
increase, never precede max(now, start_at, anchor), never pass end_at, never exceed max_runs,
and are real instants of the zone. For cron and calendar, each is a wall time the schedule names
or the end of a DST gap, and (but for a cron expression whose hour field is a wildcard, which
fires in both passes: tests/unit/test_cron_transitions.py) no two fires share a local wall time
and none is in the second pass of a DST overlap. Starting anywhere between two fires finds the
later one: resuming never skips or invents an occurrence. Half the instants are drawn within
days of a DST change of the zone.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from hypothesis import event, given, reject, settings
from hypothesis import strategies as st

from libs.scheduling import cron, schedule

ZONES = [
    "UTC",
    "Europe/London",
    "America/New_York",
    "Australia/Lord_Howe",  # 30-minute DST
    "Asia/Kolkata",  # no DST, +05:30
    "Pacific/Chatham",  # +12:45 / +13:45
]
TRANSITION_YEARS = (2000, 2026, 2027, 2038, 2099)
START, END = datetime(2000, 1, 1), datetime(2100, 1, 1)
FIRES_PER_CASE = 8
DAY_S = 86_400

MINUTES = ["*", "0", "30", "45", "*/15", "*/20", "5,35", "0-10/5"]
HOURS = ["*", "0", "1", "2", "3", "1-3", "*/6", "23"]
DAYS_OF_MONTH = ["*", "*", "1", "15", "L", "29", "31", "1-7", "LW", "1W", "31W", "L-2", "L-3W,15"]
MONTHS = ["*", "*", "2", "*/3", "3,10", "11", "JAN-JUN"]
DAYS_OF_WEEK = ["*", "*", "1-5", "0", "SUN", "MON#2", "L5", "6"]
QUARTZ_SECONDS = ["0", "*/20", "30"]
QUARTZ_DAYS_OF_WEEK = ["2-6", "1", "SUN", "MON#2", "6L", "7"]
QUARTZ_YEARS = ["", " *", " 2000-2099", " */2", " 2026,2030-2040"]


@cache
def transitions(zone: str) -> list[datetime]:
    """The instants at which `zone` changes its UTC offset in TRANSITION_YEARS (to the hour)."""
    tz, found = ZoneInfo(zone), []
    for year in TRANSITION_YEARS:
        hour = datetime(year, 1, 1, tzinfo=UTC)
        while hour.year == year:
            if (
                hour.astimezone(tz).utcoffset()
                != (hour + timedelta(hours=1)).astimezone(tz).utcoffset()
            ):
                found.append(hour)
            hour += timedelta(hours=1)
    return found


def seconds(low: int, high: int) -> st.SearchStrategy[timedelta]:
    return st.integers(low, high).map(lambda s: timedelta(seconds=s))


@st.composite
def cron_expressions(draw: st.DrawFn, hours: list[str], every_day: bool = False) -> str:
    """A random expression, standard or Quartz; `every_day`: one matching any date."""
    minute, hour = draw(st.sampled_from(MINUTES)), draw(st.sampled_from(hours))
    dom, month, dow = "*", "*", "*"
    if not every_day:
        month = draw(st.sampled_from(MONTHS))
        dom, dow = draw(st.sampled_from(DAYS_OF_MONTH)), draw(st.sampled_from(DAYS_OF_WEEK))
    if draw(st.booleans()):
        if "W" in dom or "L-" in dom:
            dow = "*"  # a day-of-week beside W or L-n is refused in 5 fields
        return f"{minute} {hour} {dom} {month} {dow}"
    second = draw(st.sampled_from(QUARTZ_SECONDS))
    if dom == "*":
        dom, dow = "?", "*" if every_day else draw(st.sampled_from(["*", *QUARTZ_DAYS_OF_WEEK]))
    else:
        dow = "?"
    year = draw(st.sampled_from(QUARTZ_YEARS))
    return f"{second} {minute} {hour} {dom} {month} {dow}{year}"


@st.composite
def bounds(draw: st.DrawFn, now: datetime, spread_s: int) -> dict:
    """Random start_at (within spread_s of now), end_at and max_runs."""
    found: dict = {}
    if draw(st.booleans()):
        found["start_at"] = now + draw(seconds(-spread_s, spread_s))
    if draw(st.booleans()):
        found["end_at"] = found.get("start_at", now) + draw(seconds(3600, 400 * DAY_S))
    if draw(st.booleans()):
        found["max_runs"] = draw(st.integers(1, FIRES_PER_CASE + 2))
    return found


@st.composite
def cases(draw: st.DrawFn) -> tuple[datetime, schedule.Schedule]:
    """Any kind of schedule, in any of ZONES, and the instant (2000-2100) a job gets it."""
    zone = draw(st.sampled_from(ZONES))
    now = draw(st.datetimes(START, END, timezones=st.just(UTC)))
    common = {"timezone": zone, **draw(bounds(now, 3 * DAY_S))}
    anchor = draw(st.none() | st.builds(lambda d: now + d, seconds(-400 * DAY_S, 3 * DAY_S)))
    kind = draw(st.sampled_from(["once", "cron", "fixed_rate", "fixed_delay", "calendar"]))
    if kind == "once":
        return now, schedule.Once(at=now + draw(seconds(-60, 30 * DAY_S)), **common)
    if kind == "cron":
        return now, schedule.Cron(expression=draw(cron_expressions(HOURS)), **common)
    if kind == "fixed_rate":
        interval = draw(st.sampled_from([1, 59, 900, 3600, DAY_S, 7 * DAY_S + 13]))
        return now, schedule.FixedRate(interval_s=interval, anchor=anchor, **common)
    if kind == "fixed_delay":
        return now, schedule.FixedDelay(delay_s=draw(st.integers(1, 2 * DAY_S)), **common)
    unit = draw(st.sampled_from(["days", "weeks", "months", "years"]))
    every = draw(st.sampled_from([1, 2, 13, 1000]))
    return now, schedule.Calendar(every=every, unit=unit, anchor=anchor, **common)


@st.composite
def dst_cases(draw: st.DrawFn) -> tuple[datetime, schedule.Schedule]:
    """A cron or calendar schedule created shortly before a DST change of its zone, naming wall
    times around the change, so that its fires meet the gap or the overlap."""
    zone = draw(st.sampled_from([z for z in ZONES if transitions(z)]))
    change = draw(st.sampled_from(transitions(zone)))
    old_offset = change.astimezone(ZoneInfo(zone)).utcoffset()
    assert old_offset is not None
    if draw(st.booleans()):
        now = change + draw(seconds(-3 * 3600, 600))
        common = {"timezone": zone, **draw(bounds(now, 3600))}
        # The wall-clock hours (read before the change) of the three hours from `change`.
        hours = [(change + timedelta(hours=h) + old_offset).hour for h in (0, 1, 2)]
        hour = draw(st.sampled_from([*map(str, hours), f"{hours[0]}-{hours[2]}"]))
        minute = draw(st.sampled_from(["0", "30", "45", "*/15", "*/30", "15,45"]))
        second = draw(st.sampled_from(["", "0 ", "30 "]))
        expression = f"{second}{minute} {hour} * * *" if second else f"{minute} {hour} * * *"
        return now, schedule.Cron(expression=expression, **common)
    now = change + draw(seconds(-DAY_S, 600))
    common = {"timezone": zone, **draw(bounds(now, 6 * 3600))}
    unit = draw(st.sampled_from(["days", "weeks"]))
    before = draw(st.integers(1, 2)) * timedelta(days=1 if unit == "days" else 7)
    anchor = change - before + draw(seconds(0, 2 * 3600))
    return now, schedule.Calendar(every=1, unit=unit, anchor=anchor, **common)


def run(s: schedule.Schedule, now: datetime, data: st.DataObject) -> list[datetime]:
    """The fires a job created at `now` gets, runs taking random time."""
    fires: list[datetime] = []
    fire = schedule.first_fire(s, now)
    assert fire is not None  # normalise refuses a schedule without a first fire
    while fire is not None and len(fires) < FIRES_PER_CASE:
        fires.append(fire)
        finished = fire + data.draw(seconds(0, 3 * DAY_S), label="run duration")
        fire = schedule.next_fire(s, after=fire, runs=len(fires), last_finished_at=finished)
    return fires


@settings(max_examples=300)
@given(case=cases(), data=st.data())
def test_fires(case: tuple[datetime, schedule.Schedule], data: st.DataObject) -> None:
    check_fires(*case, data)


@settings(max_examples=200)
@given(case=dst_cases(), data=st.data())
def test_fires_around_dst_changes(
    case: tuple[datetime, schedule.Schedule], data: st.DataObject
) -> None:
    check_fires(*case, data)


def check_fires(now: datetime, raw: schedule.Schedule, data: st.DataObject) -> None:
    try:
        s = schedule.normalise(raw, now)
    except schedule.InvalidSchedule:
        reject()
    fires = run(s, now, data)

    assert all(f.tzinfo is UTC for f in fires)
    assert all(a < b for a, b in itertools.pairwise(fires)), "strictly increasing"
    if s.end_at is not None:
        assert fires[-1] <= s.end_at
    if s.max_runs is not None:
        assert len(fires) <= s.max_runs
    if isinstance(s, schedule.Once):
        assert fires == [s.at]
    else:
        lower = max(now, s.start_at or now, getattr(s, "anchor", None) or now)
        assert fires[0] >= lower
    tz = ZoneInfo(s.timezone)
    for fire in fires:  # a real instant of the zone: its wall time reads back as itself
        local = fire.astimezone(tz)
        wall = local.replace(tzinfo=None)
        assert wall.replace(tzinfo=tz, fold=local.fold).astimezone(UTC) == fire
    if isinstance(s, schedule.Cron | schedule.Calendar):
        check_wall_clock(s, fires, tz)
    if isinstance(s, schedule.FixedRate):
        assert s.anchor is not None
        assert all((f - s.anchor) % timedelta(seconds=s.interval_s) == timedelta(0) for f in fires)
    if not isinstance(s, schedule.FixedDelay | schedule.Once):
        check_resuming_between_fires(s, fires, data)
        assert schedule.preview(s, now, len(fires)) == fires


def check_wall_clock(
    s: schedule.Cron | schedule.Calendar, fires: list[datetime], tz: ZoneInfo
) -> None:
    walls = [f.astimezone(tz) for f in fires]
    for wall in walls:
        if wall.replace(fold=1).utcoffset() != wall.utcoffset():
            event(f"{s.kind} fired in a DST overlap")
    if not (isinstance(s, schedule.Cron) and cron.parse(s.expression).wildcard_hour):
        assert len({w.replace(tzinfo=None) for w in walls}) == len(walls), "a wall fired twice"
        assert all(w.fold == 0 for w in walls), "fired in the second pass of an overlap"
    for fire, wall in zip(fires, walls, strict=True):
        if gap_end(fire, tz):
            event(f"{s.kind} fired at the end of a DST gap")
            continue  # stands for a wall time inside the gap
        naive = wall.replace(tzinfo=None)
        if isinstance(s, schedule.Cron):
            assert cron.matches(cron.parse(s.expression), naive)
        else:
            assert s.anchor is not None
            assert naive.time() == s.anchor.astimezone(tz).time()


def gap_end(fire: datetime, tz: ZoneInfo) -> bool:
    before = (fire - timedelta(microseconds=1)).astimezone(tz)
    return fire.astimezone(tz).utcoffset() > before.utcoffset()  # type: ignore[operator]


def check_resuming_between_fires(
    s: schedule.Schedule, fires: list[datetime], data: st.DataObject
) -> None:
    for runs, (earlier, later) in enumerate(itertools.pairwise(fires), start=1):
        point = earlier + (later - earlier) * data.draw(st.floats(0, 1), label="resume point")
        point = min(max(point, earlier), later)
        if point < later:
            assert schedule.next_fire(s, after=point, runs=runs) == later
        if point > earlier:
            assert schedule.first_fire(s, point) == later
