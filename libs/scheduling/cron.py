"""Cron expressions: standard 5-field and Quartz 6/7-field, checked and translated for croniter.

Users write both crontab lines (`minute hour day-of-month month day-of-week`) and Quartz
expressions (`second minute hour day-of-month month day-of-week [year]`, with `?` and day-of-week
numbered 1=SUN..7=SAT). croniter reads neither the Quartz layout nor its day numbering, so every
expression is checked and translated here, once, with a reason a user can act on when it is
refused; croniter only ever sees its own dialect (seconds, when present, as its 6th field).

Supported: numbers, names (JAN-DEC, SUN-SAT), `*`, ranges, lists, steps, `@yearly`/`@monthly`/
`@weekly`/`@daily`/`@hourly`. In the day of the month, as Quartz reads them and in lists with
plain days: `L` (the last day), `L-n` (n days before it, n <= 30), `nW` (the weekday nearest
day n), `LW` (the last weekday) and `L-nW`. In the day of the week: `#` (nth weekday of the
month, Quartz `6#3`) and the last weekday of the month (Quartz `6L`, croniter `L5`). The Quartz
year (1970-2099: numbers, lists, ranges, steps). Quartz's rules, followed here: `nW` never leaves
its month (`1W` on a Saturday is Monday the 3rd, `31W` on a Sunday is Friday the 29th), a month
without day n has no `nW` (`31W` skips April), and `L-n` skips a month shorter than n + 1 days.
croniter is given `*` for a day of the month with `W` or `L-n`, and no year, and the wall times
it yields are filtered here (`walls_after`): it reads neither `L-n`, `LW` nor `W` in a list, and
years only from version 7, at most 50 years ahead.

Refused, with the reason: `H` (hashed values), `W` after anything but one day or `L`, a year
range running backwards, a Quartz expression restricting both the day of the month and the day
of the week (Quartz requires `?` in one of them), and a 5-field expression combining `W`, `LW` or
`L-n` with a day of the week. Otherwise a 5-field expression restricting both days fires on a day
matching either, as crontab does.

Repeated hours (`CronExpression.wildcard_hour`, applied by `libs.scheduling.schedule`): when clocks
go back, an expression whose hour field is a wildcard fires in both passes of the repeated
wall-clock hour, keeping its spacing in UTC; any other fires once, in the first pass. A wildcard is
what Vixie cron and cronie call one (their HR_STAR flag): an hour field beginning with `*` (`*`,
`*/2`) and `@hourly`; Quartz's `0/n`, which Quartz defines to mean `*/n`, counts too. Every other
hour field is a fixed hour: numbers, lists, ranges and ranges with a step (`1`, `9,17`, `1-3`,
`0-23/2`), as cronie has it. The second and minute fields are not looked at: `*/15 1 * * *` and
`* * 1 * * ?` fire once through a repeated 01:00-01:59 (Vixie cron and cronie, which also look at
the minute field, would run them in both passes; here a job at a fixed hour fires once).

Iteration is on naive wall-clock time: `libs.scheduling.schedule` maps wall times to instants under
the platform's DST rules, because croniter's own time-zone handling fires twice in a DST overlap.
"""

from __future__ import annotations

import calendar
import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import MAXYEAR, date, datetime, time, timedelta
from functools import lru_cache

from croniter import CroniterError, croniter

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
FIELD_COUNT_HINT = (
    "expected 5 fields (minute hour day-of-month month day-of-week) or 6-7 Quartz fields "
    "(second minute hour day-of-month month day-of-week [year])"
)
MAX_DAYS_BEFORE_LAST = 30  # Quartz's limit for L-n
SEARCH_YEARS = 50  # a filtered search gives up this far past its last find, as croniter does
# croniter counts in float seconds, which lose microseconds near year 9999: restart it from a
# whole second (from the second before midnight, the next wall time it finds is that midnight).
RESTART_BEFORE = timedelta(seconds=1)

_VALUE = r"(?:\d{1,4}|[a-z]{3})"
_RANGE_STEP = re.compile(
    rf"^(?:\*|(?P<a>{_VALUE})(?:-(?P<b>{_VALUE}))?)(?:/(?P<step>\d{{1,4}}))?$", re.ASCII
)
_NTH = re.compile(rf"^(?P<a>{_VALUE})#(?P<n>\d{{1,2}})$", re.ASCII)
_QUARTZ_LAST_DAY = re.compile(rf"^(?P<a>{_VALUE})l$", re.ASCII)  # Quartz "6L": last Friday
_CRONITER_LAST_DAY = re.compile(r"^l(?P<a>\d)$", re.ASCII)  # croniter "L5": last Friday
# Quartz day-of-month items croniter cannot read: "15W", "L", "L-3", "LW", "L-3W".
_DAY_FROM_END = re.compile(r"^(?:(?P<day>\d{1,2})w|l(?:-(?P<back>\d{1,2}))?(?P<w>w)?)$", re.ASCII)
_NEAREST_WEEKDAY = re.compile(r"w$|^w\d", re.ASCII)  # W after something, or croniter's "W15"
_QUARTZ_STEP_FROM_0 = re.compile(r"^0/\d{1,4}$", re.ASCII)  # Quartz: "0/n" is "*/n"


class CronError(ValueError):
    """An expression that is malformed or uses syntax the platform does not support."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()


SECOND = _Field("second", 0, 59)
MINUTE = _Field("minute", 0, 59)
HOUR = _Field("hour", 0, 23)
DAY_OF_MONTH = _Field("day-of-month", 1, 31)
MONTH = _Field("month", 1, 12, MONTH_NAMES)
DAY_OF_WEEK = _Field("day-of-week", 0, 7, DAY_NAMES)  # 7 is Sunday too, as in crontab
QUARTZ_DAY_OF_WEEK = _Field("day-of-week (Quartz: 1=SUN..7=SAT)", 1, 7, DAY_NAMES)
YEAR = _Field("year", 1970, 2099)


@dataclass(frozen=True)
class DaysOfMonth:
    """A day-of-month field with Quartz items croniter cannot read: a day matches when it is one
    of `days`, or the last day of its month less one of `before_last` (`L` is 0, `L-3` is 3), or
    the weekday nearest one of `nearest` (`15W`) or of the last day less one of
    `nearest_before_last` (`LW` is 0, `L-3W` is 3)."""

    days: frozenset[int] = frozenset()
    before_last: frozenset[int] = frozenset()
    nearest: frozenset[int] = frozenset()
    nearest_before_last: frozenset[int] = frozenset()


@dataclass(frozen=True)
class CronExpression:
    """A checked expression.

    `croniter_form`: what croniter reads (5 fields, or 6 with seconds last); with `days` or
    `years` set it names more wall times than the expression, and `walls_after` filters them.
    `wildcard_hour`: it fires in both passes of a repeated hour (see the module docstring).
    `years`: the years it may fire in; None for every year.
    """

    source: str
    croniter_form: str
    wildcard_hour: bool = False
    days: DaysOfMonth | None = None
    years: frozenset[int] | None = None


@lru_cache(maxsize=1024)
def parse(expression: str) -> CronExpression:
    """Check and translate `expression`; raise `CronError` saying why when it is refused."""
    if not expression.isascii():
        raise CronError("a cron expression is ASCII: digits, names, spaces and * , - / ? L W #")
    text = " ".join(expression.lower().split())
    text = MACROS.get(text, text)
    if text.startswith("@"):
        raise CronError(f"unknown macro {text!r}: use @yearly, @monthly, @weekly, @daily, @hourly")
    fields = text.split(" ")
    if len(fields) == 5:
        form, days, years = _standard(fields)
        hour = fields[1]
    elif len(fields) in (6, 7):
        form, days, years = _quartz(fields)
        hour = fields[2]
    else:
        raise CronError(f"{FIELD_COUNT_HINT}; got {len(fields)}")
    try:
        _parsed(form)
    except (CroniterError, TypeError) as exc:
        raise CronError(f"not a valid cron expression: {exc}") from exc
    wildcard_hour = hour.startswith("*") or _QUARTZ_STEP_FROM_0.match(hour) is not None
    return CronExpression(expression, form, wildcard_hour, days, years)


def walls_after(expression: CronExpression, wall: datetime) -> Iterator[datetime]:
    """Naive wall-clock times the expression names strictly after naive `wall`, ascending.

    Stops when none is found within 50 years (of `wall`, of the last one found, or of the start
    of a year the expression names), or at the end of the calendar (year 9999).
    """
    start = wall.replace(tzinfo=None, fold=0)
    if expression.days is None and expression.years is None:
        yield from _croniter_walls(expression.croniter_form, start)
        return
    horizon = start.year + SEARCH_YEARS
    while True:
        for candidate in _croniter_walls(expression.croniter_form, start):
            day = _first_day(expression, candidate.date())
            if day == candidate.date():
                horizon = candidate.year + SEARCH_YEARS
                yield candidate
                continue
            if day is not None and expression.years and candidate.year not in expression.years:
                horizon = day.year + SEARCH_YEARS  # a jump to the next year it names
            if day is None or day.year > horizon:
                return
            start = datetime.combine(day, time()) - RESTART_BEFORE  # croniter again, that day
            break
        else:
            return


def matches(expression: CronExpression, wall: datetime) -> bool:
    """Whether the expression names naive `wall` (to the second)."""
    wall = wall.replace(tzinfo=None, fold=0)
    if expression.years is not None and wall.year not in expression.years:
        return False
    if expression.days is not None:
        if wall.day not in days_in_month(expression.days, wall.year, wall.month):
            return False
    return bool(croniter.match(expression.croniter_form, wall))


@lru_cache(maxsize=4096)
def days_in_month(rule: DaysOfMonth, year: int, month: int) -> frozenset[int]:
    """The days of the month `rule` fires on."""
    last = calendar.monthrange(year, month)[1]
    found = {day for day in rule.days if day <= last}
    found |= {last - back for back in rule.before_last if last - back >= 1}
    targets = {day for day in rule.nearest if day <= last}
    targets |= {last - back for back in rule.nearest_before_last if last - back >= 1}
    found |= {_nearest_weekday(year, month, day, last) for day in targets}
    return frozenset(found)


def _nearest_weekday(year: int, month: int, day: int, last: int) -> int:
    """Quartz's `W`: the day itself on Monday to Friday, else the nearer Friday or Monday in the
    same month (a Saturday 1st gives Monday the 3rd, a Sunday last day the Friday before it)."""
    weekday = date(year, month, day).weekday()  # Monday is 0
    if weekday == calendar.SATURDAY:
        return day - 1 if day > 1 else day + 2
    if weekday == calendar.SUNDAY:
        return day + 1 if day < last else day - 2
    return day


def _croniter_walls(form: str, start: datetime) -> Iterator[datetime]:
    itr = copy.copy(_parsed(form))
    itr.set_current(start, force=True)
    while True:
        try:
            yield itr.get_next(datetime)
        except (ValueError, OverflowError):  # CroniterBadDateError, or past year 9999
            return


@lru_cache(maxsize=1024)
def _parsed(form: str) -> croniter:
    """A croniter for `form`, to copy: croniter parses its expression again for every instance,
    which costs several times a step to the next wall time, and a schedule makes one per fire.
    A copy shares the parsed fields, which croniter only reads, and keeps its own position."""
    return croniter(form, datetime(2000, 1, 1))  # naive: croniter runs on wall-clock time


def _first_day(expression: CronExpression, day: date) -> date | None:
    """The first date on or after `day` in the expression's years and day-of-month rule."""
    years, rule = expression.years, expression.days
    while True:
        if years is not None and day.year not in years:
            later = [year for year in years if year > day.year]
            if not later:
                return None
            day = date(min(later), 1, 1)
        if rule is None:
            return day
        found = [d for d in days_in_month(rule, day.year, day.month) if d >= day.day]
        if found:
            return day.replace(day=min(found))
        if (day.year, day.month) == (MAXYEAR, 12):
            return None
        day = date(day.year + day.month // 12, day.month % 12 + 1, 1)


# --- checking and translating ----------------------------------------------------------------


def _standard(fields: list[str]) -> tuple[str, DaysOfMonth | None, None]:
    minute, hour, dom, month, dow = (_unquestion(f) for f in fields)
    _check_field(minute, MINUTE)
    _check_field(hour, HOUR)
    dom, days = _day_of_month(dom)
    _check_field(month, MONTH)
    for item in dow.split(","):
        _check_standard_day_of_week(item)
    if days is not None and dow != "*":
        raise CronError(
            "W, LW and L-n pick a day of the month on their own: put * in the day-of-week field"
        )
    return " ".join((minute, hour, dom, month, dow)), days, None


def _check_standard_day_of_week(item: str) -> None:
    """One day-of-week item in croniter's own dialect (0=SUN..6=SAT, 7=SUN, `1#2`, `L5`)."""
    nth = _NTH.match(item)
    last = _CRONITER_LAST_DAY.match(item)
    if nth:
        _check_nth(nth["n"])
        _check_value(nth["a"], DAY_OF_WEEK)
    elif last:
        _check_value(last["a"], DAY_OF_WEEK)
    else:
        _check_item(item, DAY_OF_WEEK)


def _quartz(fields: list[str]) -> tuple[str, DaysOfMonth | None, frozenset[int] | None]:
    second, minute, hour, dom, month, dow = fields[:6]
    years = _years(fields[6]) if len(fields) == 7 else None
    if dom not in ("?", "*") and dow not in ("?", "*"):
        raise CronError(
            "a Quartz expression restricts either day-of-month or day-of-week, not both: "
            "put ? in one of them"
        )
    dom, dow = _unquestion(dom), _unquestion(dow)
    _check_field(second, SECOND)
    _check_field(minute, MINUTE)
    _check_field(hour, HOUR)
    dom, days = _day_of_month(dom)
    _check_field(month, MONTH)
    dow = ",".join(_quartz_day_of_week(item) for item in dow.split(","))
    return " ".join((minute, hour, dom, month, dow, second)), days, years


def _quartz_day_of_week(item: str) -> str:
    """One Quartz day-of-week item (1=SUN..7=SAT) in croniter's numbering (0=SUN..6=SAT)."""
    if item == "l":  # "L" alone is the last day of the week: Saturday
        return "6"
    nth = _NTH.match(item)
    if nth:
        _check_nth(nth["n"])
        return f"{_quartz_day(nth['a'])}#{nth['n']}"
    last = _QUARTZ_LAST_DAY.match(item)
    if last:
        return f"l{_day_number(_quartz_day(last['a']))}"
    _check_item(item, QUARTZ_DAY_OF_WEEK)
    match = _RANGE_STEP.match(item)
    assert match is not None  # _check_item accepted it
    out = "*" if match["a"] is None else _quartz_day(match["a"])
    if match["b"] is not None:
        out += f"-{_quartz_day(match['b'])}"
    if match["step"] is not None:
        out += f"/{match['step']}"
    return out


def _quartz_day(value: str) -> str:
    _check_value(value, QUARTZ_DAY_OF_WEEK)
    return value if value in DAY_NAMES else str(int(value) - 1)


def _day_number(value: str) -> int:
    return DAY_NAMES.index(value) if value in DAY_NAMES else int(value)


def _unquestion(field: str) -> str:
    """Quartz `?` ("no specific value") is croniter's `*`."""
    return "*" if field == "?" else field


def _day_of_month(field: str) -> tuple[str, DaysOfMonth | None]:
    """The day-of-month field for croniter, and the rule that filters croniter's days when the
    field has items croniter cannot read (W, LW, L-n); croniter then gets `*`."""
    items = field.split(",")
    for item in items:
        if _NEAREST_WEEKDAY.search(item) and not _DAY_FROM_END.match(item):
            raise CronError(
                f"{item.upper()!r}: W (nearest weekday) follows one day of the month or L "
                "(15W, LW, L-3W), never a range, step or *"
            )
    if all(item == "l" or not _DAY_FROM_END.match(item) for item in items):
        for item in items:
            if item != "l":  # croniter reads L, alone or in a list of days
                _check_item(item, DAY_OF_MONTH)
        return field, None
    days: set[int] = set()
    before_last: set[int] = set()
    nearest: set[int] = set()
    nearest_before_last: set[int] = set()
    for item in items:
        special = _DAY_FROM_END.match(item)
        if special is None:
            days |= _expand(item, DAY_OF_MONTH)
        elif special["day"] is not None:
            _check_value(special["day"], DAY_OF_MONTH)
            nearest.add(int(special["day"]))
        else:
            back = int(special["back"] or 0)
            if back > MAX_DAYS_BEFORE_LAST:
                raise CronError(
                    f"{item.upper()!r}: at most {MAX_DAYS_BEFORE_LAST} days before the last day "
                    f"of the month (L-{MAX_DAYS_BEFORE_LAST})"
                )
            (nearest_before_last if special["w"] else before_last).add(back)
    rule = DaysOfMonth(*map(frozenset, (days, before_last, nearest, nearest_before_last)))
    return "*", rule


def _years(field: str) -> frozenset[int] | None:
    """The Quartz year field as the years it names; None when it names them all."""
    years: set[int] = set()
    for item in field.split(","):
        _check_item(item, YEAR)
        match = _RANGE_STEP.match(item)
        assert match is not None  # _check_item accepted it
        if match["b"] is not None and int(match["b"]) < int(match["a"]):
            raise CronError(
                f"the year range {item} runs backwards: write {match['b']}-{match['a']}"
            )
        years |= _expand(item, YEAR)
    return None if len(years) == YEAR.high - YEAR.low + 1 else frozenset(years)


def _expand(item: str, spec: _Field) -> set[int]:
    """The numbers a plain item (`*`, `n`, `a-b`, each with an optional `/step`) names; a range
    running past the field's end wraps around to its start (`28-2` in days), as in Quartz."""
    _check_item(item, spec)
    match = _RANGE_STEP.match(item)
    assert match is not None  # _check_item accepted it
    step = int(match["step"] or 1)
    if match["a"] is None:
        low, high = spec.low, spec.high
    else:
        low = int(match["a"])
        if match["b"] is not None:
            high = int(match["b"])
        else:
            high = spec.high if match["step"] is not None else low
    size = spec.high - spec.low + 1
    if high < low:
        high += size
    return {(value - spec.low) % size + spec.low for value in range(low, high + 1, step)}


def _check_field(field: str, spec: _Field) -> None:
    for item in field.split(","):
        _check_item(item, spec)


def _check_item(item: str, spec: _Field) -> None:
    if item.startswith(("h", "r")):  # no field has a name starting with either
        raise CronError(f"{item.upper()!r} (hashed or random values) is not supported")
    match = _RANGE_STEP.match(item)
    if match is None:
        raise CronError(f"{item.upper()!r} is not valid in the {spec.name} field")
    for key in ("a", "b"):
        if match[key] is not None:
            _check_value(match[key], spec)
    if match["step"] is not None and int(match["step"]) == 0:
        raise CronError(f"a step of 0 in the {spec.name} field never advances")


def _check_value(value: str, spec: _Field) -> None:
    if value.isdecimal():  # ASCII only: the patterns above match nothing else
        if not spec.low <= int(value) <= spec.high:
            raise CronError(f"{spec.name} {value} is out of range {spec.low}-{spec.high}")
    elif value not in spec.names:
        raise CronError(f"{value.upper()!r} is not a valid {spec.name} name")


def _check_nth(n: str) -> None:
    if not 1 <= int(n) <= 5:
        raise CronError(f"#{n} is out of range: a weekday occurs at most 5 times a month (#1-#5)")
