"""Schedules and their fire times: the one module of schedule math the services share.

What: the five kinds of schedule a job can have (`once`, `cron`, `fixed_rate`, `fixed_delay`,
`calendar`) as pydantic models, and pure functions over them: `normalise` (validate and fill
defaults when a job is written), `first_fire`, `next_fire` (when an occurrence ends or a job
resumes) and `preview`. The job service, the scheduler (through `libs.scheduling.misfire`) and the
executor all call these, so an occurrence is computed the same way wherever it is computed.

Why pure: a fire time is a function of the schedule and of the instants passed in (`now`,
`after`); nothing here reads a clock or does I/O, so each edge case is a table test.

Time rules (ARCHITECTURE.md, "Jobs and their lifecycle"): every datetime in and out is aware and
UTC. `cron` and `calendar` are computed on the wall clock of the job's zone, then mapped to an
instant by `_wall_to_utc`: a wall time inside a DST gap fires at the first instant after the
gap; one inside an overlap fires once, at its first occurrence (fold=0). The exception: a cron
expression whose hour field is a wildcard (`*`, `*/n`, `0/n`; `libs.scheduling.cron` defines it, as
Vixie cron does) fires in both passes of a repeated hour, so that it keeps its spacing in UTC
(`*/30` in London fires at 01:00, 01:30 BST and again at 01:00, 01:30 GMT). `calendar` moves by
whole days, weeks, months or years from its anchor, keeping the anchor's wall-clock time; a day
the target month lacks becomes its last day (31 January + 1 month is 28 or 29 February; 29
February + 1 year is 28 February, and 29 February again in the next leap year). `fixed_rate` is
absolute time (anchor + k * interval, never drifting); `fixed_delay` counts from the end of the
previous run. `start_at` and `end_at` are inclusive and apply, with `max_runs`, to every kind.
"""

from __future__ import annotations

import calendar
import itertools
import zoneinfo
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, field_validator

from libs.contracts import schemas
from libs.scheduling import cron

ONCE_PAST_TOLERANCE_S = 60  # a `once` this far in the past still runs (clock skew, slow clients)
NEVER_FIRES_HORIZON_DAYS = 366 * 10  # a cron expression with no fire this far ahead is refused
# (unless it names its years: those bound it, so a fire decades ahead is what it asks for)
MAX_CRON_CANDIDATES = 1000  # wall times tried per fire; only DST-gap duplicates are skipped
MAX_PREVIEW = 1000
MAX_INTERVAL_S = 366 * 86400
TICK = timedelta(microseconds=1)  # datetimes are discrete: "after t" is "at or after t + TICK"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)
# Names that `zoneinfo.available_timezones` lists but that are no IANA zone of their own:
# "localtime" is the host's zone, which a job must never depend on.
NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


class InvalidSchedule(ValueError):
    """A schedule the platform refuses. `field`: dotted name of the offending field (e.g.
    "schedule.expression"); `str(exc)`: why, for a user."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class _Base(schemas.StrictModel):
    timezone: str = "UTC"  # IANA name; only cron and calendar read the wall clock in it
    start_at: schemas.UtcDateTime | None = None
    end_at: schemas.UtcDateTime | None = None
    max_runs: int | None = Field(default=None, ge=1, le=1_000_000_000)

    # Replaces StrictModel's check of the raw input (same name): pydantic refuses a "before"
    # validator on the `kind` discriminator. After parsing, the values here are str, int and
    # datetime, so checking them afterwards refuses the same NUL bytes and lone surrogates.
    @field_validator("*", mode="after")
    @classmethod
    def _clean(cls, value: Any) -> Any:
        return schemas.check_value(value)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value not in _zone_names():
            raise ValueError(f"unknown time zone {value!r}: use an IANA name like 'Europe/London'")
        return value


class Once(_Base):
    kind: Literal["once"] = "once"
    at: schemas.UtcDateTime | None = None  # None: now


class Cron(_Base):
    kind: Literal["cron"] = "cron"
    expression: str = Field(min_length=1, max_length=200)


class FixedRate(_Base):
    kind: Literal["fixed_rate"] = "fixed_rate"
    interval_s: int = Field(ge=1, le=MAX_INTERVAL_S)
    anchor: schemas.UtcDateTime | None = None  # None: start_at, else now


class FixedDelay(_Base):
    kind: Literal["fixed_delay"] = "fixed_delay"
    delay_s: int = Field(ge=1, le=MAX_INTERVAL_S)


class Calendar(_Base):
    kind: Literal["calendar"] = "calendar"
    every: int = Field(ge=1, le=1000)
    unit: Literal["days", "weeks", "months", "years"]
    anchor: schemas.UtcDateTime | None = None  # None: start_at, else now


Schedule = Annotated[Once | Cron | FixedRate | FixedDelay | Calendar, Field(discriminator="kind")]
SCHEDULE_ADAPTER: TypeAdapter[Schedule] = TypeAdapter(Schedule)


def load(stored: Mapping[str, Any]) -> Schedule:
    """The schedule a job's `schedule` column holds (normalised when it was stored); raises
    `ValueError` (pydantic's `ValidationError`) when it does not validate."""
    return SCHEDULE_ADAPTER.validate_python(stored)


def normalise(schedule: Schedule, now: datetime) -> Schedule:
    """Validate and fill defaults, returning a new model.

    `Once.at` defaults to now (or start_at when later) and is refused when more than 60 s before
    now; `anchor` defaults to start_at, else now; end_at must be after start_at; a cron expression
    is refused when unsupported or when it never fires; so is any schedule whose first fire would
    be past end_at. Raises `InvalidSchedule` naming the field.
    """
    now = _utc(now, "now")
    if schedule.start_at and schedule.end_at and schedule.end_at <= schedule.start_at:
        raise InvalidSchedule("schedule.end_at", "must be after start_at")
    filled = _with_defaults(schedule, now)
    if isinstance(filled, Once):
        _check_once(filled, now)
    elif isinstance(filled, Cron):
        _check_cron(filled, now)
    if first_fire(filled, now) is None:
        raise InvalidSchedule("schedule.end_at", "is before the schedule's first occurrence")
    return filled


def first_fire(schedule: Schedule, now: datetime) -> datetime | None:
    """The first occurrence at or after max(now, start_at) (`Once`: its `at`, even if slightly
    past); None if there is none by end_at. Expects a normalised schedule."""
    now = _utc(now, "now")
    s = _with_defaults(schedule, now)
    if isinstance(s, Once):
        assert s.at is not None  # filled by _with_defaults
        fire = s.at if s.start_at is None or s.at >= s.start_at else None
    else:
        fire = _at_or_after(s, max(now, s.start_at or now))
    return _until_end(s, fire)


def next_fire(
    schedule: Schedule,
    *,
    after: datetime,
    runs: int,
    last_finished_at: datetime | None = None,
) -> datetime | None:
    """The next occurrence strictly after `after`, given `runs` occurrences already made.

    None when max_runs is reached, end_at is passed, or (`Once`) always after the first.
    `FixedDelay`: last_finished_at + delay_s (`after` + delay_s when last_finished_at is None).
    """
    after = _utc(after, "after")
    if runs < 0:
        raise ValueError("runs must be >= 0")
    if isinstance(schedule, Once) or (schedule.max_runs is not None and runs >= schedule.max_runs):
        return None
    if isinstance(schedule, FixedDelay):
        finished = after if last_finished_at is None else _utc(last_finished_at, "last_finished_at")
        fire = _plus(max(finished, after), timedelta(seconds=schedule.delay_s))
        if fire is not None and schedule.start_at is not None:
            fire = max(fire, schedule.start_at)
    else:
        fire = _at_or_after(_anchored(schedule), max(after + TICK, schedule.start_at or after))
    return _until_end(schedule, fire)


def preview(schedule: Schedule, now: datetime, count: int) -> list[datetime]:
    """Up to `count` (1..1000) next fire times from now, as a job created now would run them
    (`FixedDelay` assumes runs take no time)."""
    if not 1 <= count <= MAX_PREVIEW:
        raise InvalidSchedule("count", f"must be between 1 and {MAX_PREVIEW}")
    now = _utc(now, "now")
    s = _with_defaults(schedule, now)
    fires: list[datetime] = []
    fire = first_fire(s, now)
    while fire is not None:
        fires.append(fire)
        if len(fires) == count:
            break
        fire = next_fire(s, after=fire, runs=len(fires), last_finished_at=fire)
    return fires


# --- defaults and checks ---------------------------------------------------------------------


def _with_defaults(s: Schedule, now: datetime) -> Schedule:
    if isinstance(s, Once) and s.at is None:
        return s.model_copy(update={"at": max(now, s.start_at or now)})
    if isinstance(s, FixedRate | Calendar) and s.anchor is None:
        return s.model_copy(update={"anchor": s.start_at or now})
    return s


def _anchored(s: Schedule) -> Schedule:
    """`s` with an anchor, for the functions that have no `now` to default it to."""
    if isinstance(s, FixedRate | Calendar) and s.anchor is None:
        if s.start_at is None:
            raise ValueError("the schedule has no anchor: normalise it first")
        return s.model_copy(update={"anchor": s.start_at})
    return s


def _check_once(s: Once, now: datetime) -> None:
    assert s.at is not None  # filled by _with_defaults
    if s.at < now - timedelta(seconds=ONCE_PAST_TOLERANCE_S):
        raise InvalidSchedule(
            "schedule.at", f"is more than {ONCE_PAST_TOLERANCE_S} seconds in the past"
        )
    if s.start_at is not None and s.at < s.start_at:
        raise InvalidSchedule("schedule.at", "is before start_at")


def _check_cron(s: Cron, now: datetime) -> None:
    try:
        expression = cron.parse(s.expression)
    except cron.CronError as exc:
        raise InvalidSchedule("schedule.expression", str(exc)) from exc
    start = max(now, s.start_at or now)
    fire = _cron_after(s, start - TICK)
    if expression.years is not None:
        last = max(expression.years)
        if fire is None and last < start.astimezone(zoneinfo.ZoneInfo(s.timezone)).year:
            reason = f"never fires again: {last}, its last year, is past"
            raise InvalidSchedule("schedule.expression", reason)
        if fire is None:
            reason = f"never fires again: it has no occurrence from now to the end of {last}"
            raise InvalidSchedule("schedule.expression", reason)
        return
    horizon = _plus(start, timedelta(days=NEVER_FIRES_HORIZON_DAYS))
    if fire is None or (horizon is not None and fire > horizon):
        years = NEVER_FIRES_HORIZON_DAYS // 366
        raise InvalidSchedule(
            "schedule.expression", f"never fires: it has no occurrence in the next {years} years"
        )


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) - NOT_ZONES


# --- occurrences -----------------------------------------------------------------------------


def _at_or_after(s: Schedule, lower: datetime) -> datetime | None:
    """The first occurrence of a recurring schedule at or after `lower`, ignoring end_at."""
    if isinstance(s, FixedDelay):
        return lower
    if isinstance(s, FixedRate):
        return _rate_at_or_after(s, lower)
    if isinstance(s, Cron):
        return _cron_after(s, lower - TICK)
    if isinstance(s, Calendar):
        return _calendar_at_or_after(s, lower)
    raise TypeError(f"not a recurring schedule: {s.kind}")


def _rate_at_or_after(s: FixedRate, lower: datetime) -> datetime | None:
    """anchor + k * interval with the least k >= 0 reaching `lower`: computed from the anchor
    every time, so the 1000th fire is exactly anchor + 999 * interval."""
    assert s.anchor is not None  # see _anchored
    interval = timedelta(seconds=s.interval_s)
    periods = max(0, -((s.anchor - lower) // interval))  # ceil((lower - anchor) / interval)
    try:
        return s.anchor + periods * interval
    except OverflowError:  # past the end of the calendar
        return None


def _cron_after(s: Cron, after: datetime) -> datetime | None:
    """The first fire of the expression strictly after `after`, on the zone's wall clock."""
    tz = zoneinfo.ZoneInfo(s.timezone)
    expression = cron.parse(s.expression)
    fire = _first_pass_after(expression, after, tz)
    if expression.wildcard_hour:
        again = _second_pass_after(expression, after, tz)
        if again is not None and (fire is None or again < fire):
            return again
    return fire


def _first_pass_after(
    expression: cron.CronExpression, after: datetime, tz: zoneinfo.ZoneInfo
) -> datetime | None:
    """The first wall time after `after` that the expression names, at its first occurrence
    (or at the end of the DST gap it falls in)."""
    walls = cron.walls_after(expression, _cron_start_wall(after, tz))
    try:
        for wall in itertools.islice(walls, MAX_CRON_CANDIDATES):
            fire = _wall_to_utc(wall, tz)
            if fire > after:  # wall times in a DST gap all map to its end: fire that once
                return fire
    except OverflowError:  # the end of the calendar (year 9999)
        return None
    return None


def _second_pass_after(
    expression: cron.CronExpression, after: datetime, tz: zoneinfo.ZoneInfo
) -> datetime | None:
    """For an expression that fires in both passes of a repeated hour: its first fire after
    `after` in the second pass of the DST overlap `after` is in (either pass of it). None when
    `after` is in no overlap or the second pass has no fire left: then the first pass decides."""
    wall = after.astimezone(tz).replace(tzinfo=None, fold=0)
    first, second = wall.replace(tzinfo=tz, fold=0), wall.replace(tzinfo=tz, fold=1)
    if first.astimezone(UTC) >= second.astimezone(UTC):  # one instant: not in an overlap
        return None
    change = _transition(first.astimezone(UTC), second.astimezone(UTC), tz)
    old_offset, new_offset = first.utcoffset(), second.utcoffset()
    assert old_offset is not None and new_offset is not None  # a ZoneInfo always has one
    naive_change = change.replace(tzinfo=None)
    # The second pass reads the wall times [change + new, change + old) with the new offset.
    naive_after = after.astimezone(UTC).replace(tzinfo=None)
    start = max(naive_change + new_offset - TICK, naive_after + new_offset)
    repeated = next(cron.walls_after(expression, start), None)
    if repeated is None or repeated >= naive_change + old_offset:
        return None
    return (repeated - new_offset).replace(tzinfo=UTC)


def _cron_start_wall(after: datetime, tz: zoneinfo.ZoneInfo) -> datetime:
    """The wall time to search from for fires strictly after `after`."""
    local = after.astimezone(tz)
    wall = local.replace(tzinfo=None, fold=0)
    if not local.fold:
        return wall
    # `after` is in the second pass of a DST overlap: every wall time up to the overlap's end
    # already had its one fire, in the first pass. Search from that end instead.
    first_pass = wall.replace(tzinfo=tz)
    change = _transition(first_pass.astimezone(UTC), after, tz)
    offset = first_pass.utcoffset()
    assert offset is not None  # a ZoneInfo always has one
    return change.replace(tzinfo=None) + offset - TICK


def _calendar_at_or_after(s: Calendar, lower: datetime) -> datetime | None:
    """The first of anchor's local date + k periods (k >= 0), at anchor's wall time, at or after
    `lower` and the anchor itself."""
    assert s.anchor is not None  # see _anchored
    tz = zoneinfo.ZoneInfo(s.timezone)
    anchor_wall = s.anchor.astimezone(tz).replace(tzinfo=None, fold=0)
    lower = max(lower, s.anchor)
    lower_wall = lower.astimezone(tz).replace(tzinfo=None)
    # Start two periods early: a DST shift moves an occurrence by hours, never by a period.
    for k in itertools.count(max(0, _periods_between(s, anchor_wall, lower_wall) - 2)):
        fire = _calendar_occurrence(s, anchor_wall, k, tz)
        if fire is None or fire >= lower:
            return fire
    raise AssertionError("unreachable: itertools.count is endless")


def _periods_between(s: Calendar, start: datetime, end: datetime) -> int:
    if s.unit == "years":
        return (end.year - start.year) // s.every
    if s.unit == "months":
        return ((end.year - start.year) * 12 + end.month - start.month) // s.every
    days = s.every * (7 if s.unit == "weeks" else 1)
    return (end.date() - start.date()).days // days


def _calendar_occurrence(
    s: Calendar, anchor_wall: datetime, k: int, tz: zoneinfo.ZoneInfo
) -> datetime | None:
    """Occurrence k, or None past the end of the calendar."""
    try:
        if s.unit in ("months", "years"):
            wall = _add_months(anchor_wall, k * s.every * (12 if s.unit == "years" else 1))
        else:
            wall = anchor_wall + timedelta(days=k * s.every * (7 if s.unit == "weeks" else 1))
        return _wall_to_utc(wall, tz)
    except (OverflowError, ValueError):
        return None


def _add_months(wall: datetime, months: int) -> datetime:
    """`wall` moved by whole months, the day clamped to the target month's last day (Jan 31 +
    1 month is Feb 28 or 29, Feb 29 + 12 months is Feb 28). Always computed from the anchor, so
    the day comes back (Mar 31; Feb 29 in the next leap year)."""
    index = wall.month - 1 + months
    year, month = wall.year + index // 12, index % 12 + 1
    if year > datetime.max.year:
        raise OverflowError("past the end of the calendar")
    day = min(wall.day, calendar.monthrange(year, month)[1])
    return wall.replace(year=year, month=month, day=day)


# --- wall clock and instants -----------------------------------------------------------------


def _wall_to_utc(wall: datetime, tz: zoneinfo.ZoneInfo) -> datetime:
    """The instant naive `wall` fires at in `tz`: its first occurrence in a DST overlap (fold=0),
    the end of the gap when it falls in one."""
    instant = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == wall:
        return instant
    # In a gap, fold=0 reads the wall clock with the offset from before the change, which lands
    # after the change; fold=1 reads it with the offset after, which lands before.
    before = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    return _transition(before, instant, tz)


def _transition(before: datetime, after: datetime, tz: zoneinfo.ZoneInfo) -> datetime:
    """The instant in (before, after] at which `tz` changes to `after`'s UTC offset. Zone changes
    fall on whole seconds, so a bisection over seconds finds it exactly."""
    target = after.astimezone(tz).utcoffset()
    low = (before - EPOCH) // SECOND  # floor: still the old offset
    high = -((EPOCH - after) // SECOND)  # ceil: already the new one
    while high - low > 1:
        middle = (low + high) // 2
        if (EPOCH + middle * SECOND).astimezone(tz).utcoffset() == target:
            high = middle
        else:
            low = middle
    return EPOCH + high * SECOND


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return value.astimezone(UTC)


def _plus(value: datetime, delta: timedelta) -> datetime | None:
    try:
        return value + delta
    except OverflowError:
        return None


def _until_end(s: Schedule, fire: datetime | None) -> datetime | None:
    if fire is None or (s.end_at is not None and fire > s.end_at):
        return None
    return fire
