"""Cron expressions: standard 5-field and Quartz 6/7-field, checked and translated for croniter.

Users write both crontab lines (`minute hour day-of-month month day-of-week`) and Quartz
expressions (`second minute hour day-of-month month day-of-week [year]`, with `?` and day-of-week
numbered 1=SUN..7=SAT). croniter reads neither the Quartz layout nor its day numbering, so every
expression is checked and translated here, once, with a reason a user can act on when it is
refused; croniter only ever sees its own dialect (seconds, when present, as its 6th field).

Supported: numbers, names (JAN-DEC, SUN-SAT), `*`, ranges, lists, steps, `L` (last day of the
month), `#` (nth weekday of the month), last weekday of the month (Quartz `6L`, croniter `L5`),
`@yearly`/`@monthly`/`@weekly`/`@daily`/`@hourly`. Refused: `W` and `LW` (nearest weekday), `L-n`,
`H` (hashed values), a Quartz year other than `*`, and a Quartz expression restricting both the
day of the month and the day of the week (Quartz requires `?` in one of them). A 5-field
expression restricting both fires on a day matching either, as crontab does.

Iteration is on naive wall-clock time: `libs.schedule` maps wall times to instants under the
platform's DST rules, because croniter's own time-zone handling fires twice in a DST overlap.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
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

_VALUE = r"(?:\d{1,4}|[a-z]{3})"
_RANGE_STEP = re.compile(
    rf"^(?:\*|(?P<a>{_VALUE})(?:-(?P<b>{_VALUE}))?)(?:/(?P<step>\d{{1,4}}))?$", re.ASCII
)
_NTH = re.compile(rf"^(?P<a>{_VALUE})#(?P<n>\d{{1,2}})$", re.ASCII)
_QUARTZ_LAST_DAY = re.compile(rf"^(?P<a>{_VALUE})l$", re.ASCII)  # Quartz "6L": last Friday
_CRONITER_LAST_DAY = re.compile(r"^l(?P<a>\d)$", re.ASCII)  # croniter "L5": last Friday


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


@dataclass(frozen=True)
class CronExpression:
    """A checked expression: `croniter_form` is what croniter reads (5 fields, or 6 with seconds
    last)."""

    source: str
    croniter_form: str


@lru_cache(maxsize=1024)
def parse(expression: str) -> CronExpression:
    """Check and translate `expression`; raise `CronError` saying why when it is refused."""
    if not expression.isascii():
        raise CronError("a cron expression is ASCII: digits, names, spaces and * , - / ? L #")
    text = " ".join(expression.lower().split())
    text = MACROS.get(text, text)
    if text.startswith("@"):
        raise CronError(f"unknown macro {text!r}: use @yearly, @monthly, @weekly, @daily, @hourly")
    fields = text.split(" ")
    if len(fields) == 5:
        form = _standard(fields)
    elif len(fields) in (6, 7):
        form = _quartz(fields)
    else:
        raise CronError(f"{FIELD_COUNT_HINT}; got {len(fields)}")
    try:
        croniter(form, datetime(2000, 1, 1))  # naive: croniter runs on wall-clock time
    except (CroniterError, TypeError) as exc:
        raise CronError(f"not a valid cron expression: {exc}") from exc
    return CronExpression(source=expression, croniter_form=form)


def walls_after(expression: CronExpression, wall: datetime) -> Iterator[datetime]:
    """Naive wall-clock times the expression names strictly after naive `wall`, ascending.

    Stops when croniter finds none within 50 years, or at the end of the calendar (year 9999).
    """
    itr = croniter(expression.croniter_form, wall.replace(tzinfo=None, fold=0))
    while True:
        try:
            yield itr.get_next(datetime)
        except (ValueError, OverflowError):  # CroniterBadDateError, or past year 9999
            return


def _standard(fields: list[str]) -> str:
    minute, hour, dom, month, dow = (_unquestion(f) for f in fields)
    _check_field(minute, MINUTE)
    _check_field(hour, HOUR)
    _check_day_of_month(dom)
    _check_field(month, MONTH)
    for item in dow.split(","):
        _check_standard_day_of_week(item)
    return " ".join((minute, hour, dom, month, dow))


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


def _quartz(fields: list[str]) -> str:
    second, minute, hour, dom, month, dow = fields[:6]
    if len(fields) == 7 and fields[6] != "*":
        raise CronError(f"the year field must be *: years are not supported ({fields[6]!r})")
    if dom not in ("?", "*") and dow not in ("?", "*"):
        raise CronError(
            "a Quartz expression restricts either day-of-month or day-of-week, not both: "
            "put ? in one of them"
        )
    dom, dow = _unquestion(dom), _unquestion(dow)
    _check_field(second, SECOND)
    _check_field(minute, MINUTE)
    _check_field(hour, HOUR)
    _check_day_of_month(dom)
    _check_field(month, MONTH)
    dow = ",".join(_quartz_day_of_week(item) for item in dow.split(","))
    return " ".join((minute, hour, dom, month, dow, second))


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


def _check_day_of_month(field: str) -> None:
    for item in field.split(","):
        if item == "l":
            continue
        if item == "lw" or "w" in item:
            raise CronError(
                f"{item.upper()!r} (nearest weekday) is not supported in the day-of-month field"
            )
        if item.startswith("l-"):
            raise CronError(f"{item.upper()!r} (days before the end of the month) is not supported")
        _check_item(item, DAY_OF_MONTH)


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
