"""Schedules in plain words, for the console's pages: `schedule_in_words(job.schedule)`.

Every kind of the jobs API is described: `cron` through `cron-descriptor` ("At 01:30 AM,
every day (Europe/London)"), `fixed_rate` ("Every 15 minutes"), `fixed_delay` ("15 minutes
after each run ends"), `calendar` ("Every 2 weeks on Monday at 09:00 (Europe/Paris)") and
`once` ("Once, at 2030-01-01 09:00 UTC"), followed by the bounds every kind may have (start,
end, maximum number of runs). Instants are written in UTC, as the console shows every time;
cron and calendar schedules name their zone, whose wall clock they follow.

A pure function that never raises: a schedule it cannot read (a kind newer than this console,
a cron expression `cron-descriptor` does not follow) is still described, with its raw form.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cron_descriptor import ExpressionDescriptor
from pydantic import TypeAdapter, ValidationError

from libs.scheduling.cron import MACROS
from scheduler_client import models

_SCHEDULE: TypeAdapter[Any] = TypeAdapter(models.Schedule)
# Largest first: a duration is written in the largest unit that divides it exactly.
_UNITS = (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1))
_WILDCARDS = frozenset({"*", "?"})
# Days of the month `cron-descriptor` describes wrongly: `L` or `W` in a list, and `L-nW`.
_MISREAD_DAYS = re.compile(r"[LW].*,|,.*[LW]|L-\d+W")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def schedule_in_words(schedule: Any) -> str:
    """`schedule` (a `scheduler_client` schedule model, or a schedule as JSON) described for a
    person, in one sentence."""
    try:
        return _describe(_as_model(schedule))
    except Exception:  # a description must never break a page
        return _raw(schedule)


def duration_in_words(seconds: float) -> str:
    """`900` -> "15 minutes", `3600` -> "1 hour", `90` -> "90 seconds"."""
    whole = int(seconds)
    if whole != seconds or whole < 1:
        return f"{seconds:g} seconds"
    for unit, size in _UNITS:
        if whole % size == 0:
            return _count(whole // size, unit)
    raise AssertionError("unreachable: every whole number of seconds is in seconds")


def instant_in_words(moment: datetime) -> str:
    """An instant in UTC, to the minute (to the second when it has seconds)."""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return utc.strftime("%Y-%m-%d %H:%M:%S UTC" if utc.second else "%Y-%m-%d %H:%M UTC")


# --- the kinds ---------------------------------------------------------------------------------


def _as_model(schedule: Any) -> Any:
    if isinstance(schedule, Mapping):
        try:
            return _SCHEDULE.validate_python(schedule, context=models.ANSWER)
        except ValidationError:
            return schedule
    return schedule


def _describe(schedule: Any) -> str:
    if isinstance(schedule, models.CronSchedule):
        try:
            head = _cron(schedule.expression)
        except Exception:  # an expression cron-descriptor cannot follow
            head = f"On the cron schedule {schedule.expression}"
        head += f" ({schedule.timezone})"
    elif isinstance(schedule, models.FixedRateSchedule):
        head = f"Every {_every(schedule.interval_s)}"
    elif isinstance(schedule, models.FixedDelaySchedule):
        head = f"{duration_in_words(schedule.delay_s)} after each run ends"
    elif isinstance(schedule, models.CalendarSchedule):
        head = _calendar(schedule)
    elif isinstance(schedule, models.OnceSchedule):
        at = f"at {instant_in_words(schedule.at)}" if schedule.at else "as soon as it is created"
        return f"Once, {at}" + _bounds(schedule, runs=False)
    else:
        return _raw(schedule)
    return head + _bounds(schedule, runs=True)


def _cron(expression: str) -> str:
    text = " ".join(expression.split())
    text = MACROS.get(text.lower(), text).upper()
    fields = text.split(" ")
    quartz = len(fields) in (6, 7)
    if len(fields) == 6:
        fields.append("*")  # a year, so that the 6 fields are never read as ending in one
    described = ExpressionDescriptor(
        " ".join(fields),
        # Quartz numbers the days of the week 1 (Sunday) to 7; crontab 0 (Sunday) to 6, or 7.
        day_of_week_start_index_zero=not quartz,
    ).get_description()
    days = fields[3:] if quartz else fields[2:]
    hour = fields[2] if quartz else fields[1]
    if _MISREAD_DAYS.search(days[0]):
        raise ValueError(f"cron-descriptor misreads the day of the month {days[0]!r}")
    if set(days) <= _WILDCARDS and not hour.startswith("*") and "/" not in hour:
        described += ", every day"
    return described


def _calendar(schedule: models.CalendarSchedule) -> str:
    unit = schedule.unit.removesuffix("s")
    head = f"Every {_count(schedule.every, unit) if schedule.every != 1 else unit}"
    anchor = schedule.anchor or schedule.start_at
    if anchor is not None:
        wall = anchor.astimezone(_zone(schedule.timezone))
        if unit == "week":
            head += f" on {_WEEKDAYS[wall.weekday()]}"
        elif unit == "month":
            head += f" on day {wall.day}"
        elif unit == "year":
            head += f" on {wall.day} {_MONTHS[wall.month - 1]}"
        head += f" at {wall:%H:%M}"
    return f"{head} ({schedule.timezone})"


def _bounds(schedule: Any, *, runs: bool) -> str:
    parts = []
    if schedule.start_at is not None:
        parts.append(f"from {instant_in_words(schedule.start_at)}")
    if schedule.end_at is not None:
        parts.append(f"until {instant_in_words(schedule.end_at)}")
    if runs and schedule.max_runs is not None:
        parts.append(f"at most {_count(schedule.max_runs, 'run')}")
    return "".join(f", {part}" for part in parts)


def _raw(schedule: Any) -> str:
    if isinstance(schedule, models.CronSchedule):
        return f"On the cron schedule {schedule.expression} ({schedule.timezone})"
    kind = schedule.get("kind") if isinstance(schedule, Mapping) else None
    kind = getattr(schedule, "kind", kind)
    return f"A schedule of kind {kind!r}" if isinstance(kind, str) else "A schedule"


# --- words -------------------------------------------------------------------------------------


def _count(number: int, unit: str) -> str:
    return f"{number} {unit}" + ("" if number == 1 else "s")


def _every(seconds: int) -> str:
    """ "15 minutes", or "hour" for one of a unit ("Every hour")."""
    words = duration_in_words(seconds)
    return words.removeprefix("1 ") if words.startswith("1 ") else words


def _zone(name: str) -> zoneinfo.ZoneInfo | Any:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return UTC
