"""Job documents from the command line: the flags of `jobs create`, `jobs edit` and `schedules
preview` mapped to the API's JSON (camelCase), job files read as JSON or YAML, and times and
durations as people type them. Pure functions: the clock is passed in, nothing is sent.

The documents are plain JSON values, not the library's models, so that the job service judges
them and names the field it refuses (`schedule.expression`), exactly as for a job file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from schedctl.output import UsageProblem

DURATION = re.compile(r"^(\d+)\s*(s|m|h|d|w)?$")
UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
YAML_SUFFIXES = (".yaml", ".yml")


# --- Durations and times -------------------------------------------------------------------------


def seconds(text: str, flag: str) -> int:
    """`90`, `90s`, `15m`, `2h`, `1d` or `1w` as seconds."""
    match = DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise UsageProblem(f"{flag}: {text!r} is not a duration (seconds, or 90s, 15m, 2h, 1d)")
    number, unit = match.groups()
    return int(number) * UNIT_S[unit or "s"]


def zone(name: str, flag: str = "--tz") -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageProblem(
            f"{flag}: unknown time zone {name!r} (an IANA name: Europe/Paris)"
        ) from None


def moment(text: str, flag: str, *, now: datetime, in_zone: tzinfo | None = None) -> datetime:
    """A time as typed: `now`, `+15m` (from now), or ISO 8601 (`2026-05-01T09:00`,
    `2026-05-01 09:00+02:00`); without an offset it is a wall-clock time in `in_zone`, else in
    this machine's zone."""
    text = text.strip()
    if text.lower() == "now":
        return now
    if text.startswith("+"):
        return now + timedelta(seconds=seconds(text[1:], flag))
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise UsageProblem(
            f"{flag}: {text!r} is not a time (now, +15m, or ISO 8601: 2026-05-01T09:00+02:00)"
        ) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=in_zone) if in_zone else parsed.astimezone()
    return parsed


def since(text: str, flag: str, *, now: datetime) -> datetime:
    """A bound of a time range: a duration ago (`1h`, `2d`) or a time as `moment` reads it."""
    if DURATION.fullmatch(text.strip().lower()):
        return now - timedelta(seconds=seconds(text, flag))
    return moment(text, flag, now=now)


# --- Values of flags -----------------------------------------------------------------------------


def pairs(values: Sequence[str], separator: str, flag: str) -> dict[str, str]:
    """`--label team=ops` or `--header 'X-Team: ops'` (repeatable) as a mapping."""
    found: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition(separator)
        if not sep or not key.strip():
            raise UsageProblem(f"{flag}: {value!r} is not KEY{separator}VALUE")
        found[key.strip()] = text.strip() if separator == ":" else text
    return found


def json_value(text: str, flag: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageProblem(f"{flag}: not valid JSON ({exc})") from None


# --- Files ---------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """YAML as written: a time stays the string it is (the API judges it, offset included),
    instead of becoming a datetime that may have lost its zone."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_value(text: str, source: str) -> Any:
    """What a file holds, as JSON, or YAML, which JSON is a subset of."""
    try:
        if source.endswith(".json"):
            return json.loads(text)
        return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader)
    except (ValueError, yaml.YAMLError) as exc:
        kind = "JSON" if source.endswith(".json") else "JSON or YAML"
        reason = " ".join(str(exc).split())
        raise UsageProblem(f"{source}: not valid {kind} ({reason})") from None


def _mapping(value: Any, where: str, also: str = "") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UsageProblem(f"{where}: expected a mapping of fields (name, type, schedule...){also}")
    return value


def parse_document(text: str, source: str) -> dict[str, Any]:
    """A job document (or part of one)."""
    return _mapping(parse_value(text, source), source)


def parse_jobs(text: str, source: str) -> dict[str, Any] | list[dict[str, Any]]:
    """A job document, or a list of them (a JSON array or YAML sequence: a batch)."""
    value = parse_value(text, source)
    if not isinstance(value, list):
        return _mapping(value, source, " or a list of them")
    if not value:
        raise UsageProblem(f"{source}: the list holds no jobs")
    return [_mapping(item, f"{source}: jobs[{index}]") for index, item in enumerate(value)]


def _read(path: str, stdin: Any) -> tuple[str, str]:
    """The text in the file at `path`, or on `stdin` for `-`, and its name."""
    if path == "-":
        return stdin.read(), "standard input"
    try:
        return Path(path).read_text(encoding="utf-8"), path
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageProblem(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


def read_document(path: str, stdin: Any) -> dict[str, Any]:
    """The document in the file at `path`, or on `stdin` for `-`."""
    return parse_document(*_read(path, stdin))


def read_jobs(path: str, stdin: Any) -> dict[str, Any] | list[dict[str, Any]]:
    """The job document, or the list of them, in the file at `path` (`-`: `stdin`)."""
    return parse_jobs(*_read(path, stdin))


# --- Jobs ----------------------------------------------------------------------------------------


@dataclass
class ScheduleFlags:
    cron: str | None = None
    tz: str | None = None
    every: str | None = None  # fixed rate
    delay: str | None = None  # fixed delay
    at: str | None = None  # once

    def kinds(self) -> list[str]:
        given = {"--cron": self.cron, "--every": self.every, "--delay": self.delay, "--at": self.at}
        return [flag for flag, value in given.items() if value is not None]


@dataclass
class JobFlags:
    name: str | None = None
    description: str | None = None
    type: str | None = None
    schedule: ScheduleFlags = field(default_factory=ScheduleFlags)
    http_url: str | None = None
    http_method: str | None = None
    headers: Sequence[str] = ()
    body: str | None = None
    payload: str | None = None
    labels: Sequence[str] = ()
    max_attempts: int | None = None
    timeout: str | None = None

    def http(self) -> bool:
        return any((self.http_url, self.http_method, self.headers, self.body is not None))


def schedule(flags: ScheduleFlags, *, now: datetime) -> dict[str, Any] | None:
    """The schedule the flags name, or None when they name none (`--tz` alone names none)."""
    kinds = flags.kinds()
    if len(kinds) > 1:
        raise UsageProblem(f"give one schedule, not {' and '.join(kinds)}")
    if not kinds:
        return None
    spec: dict[str, Any]
    if flags.cron is not None:
        spec = {"kind": "cron", "expression": flags.cron}
    elif flags.every is not None:
        spec = {"kind": "fixed_rate", "intervalSeconds": seconds(flags.every, "--every")}
    elif flags.delay is not None:
        spec = {"kind": "fixed_delay", "delaySeconds": seconds(flags.delay, "--delay")}
    else:
        spec = {"kind": "once"}
        assert flags.at is not None
        if flags.at.strip().lower() != "now":  # no `at`: the job service runs it now
            in_zone = zone(flags.tz) if flags.tz else None
            spec["at"] = moment(flags.at, "--at", now=now, in_zone=in_zone).isoformat()
    if flags.tz is not None:
        spec["timezone"] = flags.tz
    return spec


def _payload(flags: JobFlags, base: Mapping[str, Any]) -> dict[str, Any] | None:
    """The payload: `--payload` (or `base`), with the `--http-*` flags laid over it."""
    if flags.payload is None and not flags.http():
        return None
    payload = dict(base)
    if flags.payload is not None:
        given = json_value(flags.payload, "--payload")
        if not isinstance(given, dict):
            raise UsageProblem("--payload: expected a JSON object ({...})")
        payload = given
    if flags.http_url is not None:
        payload["url"] = flags.http_url
    if flags.http_method is not None:
        payload["method"] = flags.http_method.upper()
    if flags.headers:
        payload["headers"] = {**payload.get("headers", {}), **pairs(flags.headers, ":", "--header")}
    if flags.body is not None:
        payload["body"] = json_value(flags.body, "--body")
        payload.pop("bodyText", None)
    return payload


def _lay_over(
    flags: JobFlags, job: dict[str, Any], current: Mapping[str, Any], *, kind: Any, now: datetime
) -> None:
    """The flags `create` and `edit` share, laid over `job`; `current`: the fields a flag
    changes part of (a payload, schedule, retry policy or labels) as they stand."""
    payload = _payload(flags, job.get("payload", current.get("payload", {})))
    if payload is not None:
        if flags.http() and kind != "http":
            raise UsageProblem(f"--http-* flags are for http jobs, not {kind!r} ones")
        job["payload"] = payload
    spec = schedule(flags.schedule, now=now)
    if spec is not None:
        job["schedule"] = spec
    elif flags.schedule.tz is not None:  # --tz alone moves the schedule there is
        kept = job.get("schedule", current.get("schedule"))
        if isinstance(kept, dict):
            job["schedule"] = {**kept, "timezone": flags.schedule.tz}
    if flags.name is not None:
        job["name"] = flags.name
    if flags.description is not None:
        job["description"] = flags.description or None  # `--description ''` removes it
    if flags.labels:
        labels = job.get("labels", current.get("labels")) or {}
        job["labels"] = {**labels, **pairs(flags.labels, "=", "--label")}
    if flags.max_attempts is not None:
        # A retry policy is replaced whole: keep what was there beside the new maximum.
        policy = job.get("retryPolicy", current.get("retryPolicy")) or {}
        job["retryPolicy"] = {**policy, "maxAttempts": flags.max_attempts}
    if flags.timeout is not None:
        job["timeoutSeconds"] = seconds(flags.timeout, "--timeout")


def new_job(flags: JobFlags, *, now: datetime, base: Mapping[str, Any] | None = None) -> dict:
    """The body of `POST /v1/jobs`: `base` (a job file), with the flags laid over it."""
    job = dict(base or {})
    if flags.type is not None:
        job["type"] = flags.type
    elif flags.http() and "type" not in job:
        job["type"] = "http"
    _lay_over(flags, job, job, kind=job.get("type"), now=now)
    missing = [flag for flag, key in REQUIRED.items() if key not in job]
    if missing:
        raise UsageProblem(f"missing {', '.join(missing)} (or give --file with a job document)")
    return job


REQUIRED = {
    "--name": "name",
    "--type (or --http-url)": "type",
    "a schedule (--cron, --every, --delay or --at)": "schedule",
}


def job_changes(
    flags: JobFlags, current: Mapping[str, Any], *, now: datetime, base: Mapping | None = None
) -> dict[str, Any]:
    """The body of `PATCH /v1/jobs/{id}`: `base` (a partial job file), with the flags laid over
    it. A payload, schedule or retry policy is replaced whole, so a flag changing part of one
    starts from the job's `current` one (the API's JSON of the job as read)."""
    changes = dict(base or {})
    if flags.type is not None:
        raise UsageProblem("--type: a job's type cannot change; create a new job")
    _lay_over(flags, changes, current, kind=current.get("type"), now=now)
    if not changes:
        raise UsageProblem("nothing to change: give flags (--name, --cron...) or --file")
    return changes
