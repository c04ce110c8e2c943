"""The base of every request body: strict about what a typo or a hostile client could slip in.

Refused with a 422 that names the field (ARCHITECTURE.md, "Input"): unknown fields (a typo
would otherwise silently do nothing), `NaN` and `Infinity`, date-times without a UTC offset,
NUL bytes and lone surrogates in any string, at any depth (free-form JSON included).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, field_validator

MAX_DEPTH = 32  # nesting of free-form JSON values


def check_value(value: Any, depth: int = 0) -> Any:
    """Raise `ValueError` if `value` holds a NUL byte, a lone surrogate, NaN or an infinity."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("NUL bytes are not allowed in strings")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("lone surrogates are not allowed in strings") from None
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("NaN and Infinity are not allowed")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_value(key, depth + 1)
            check_value(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            check_value(item, depth + 1)
    return value


def _to_utc(value: datetime) -> datetime:
    # A date-time at the edge of the calendar (year 1 at +01:00) has no UTC equivalent that
    # Python or the database driver can hold: a 422, not a 500.
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range once converted to UTC") from None


UtcDateTime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A date-time that must carry a UTC offset; stored and returned in UTC."""


class StrictModel(BaseModel):
    """Base of request bodies. Response models may use it too (extra fields never leak in)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _clean(cls, value: Any) -> Any:
        return check_value(value)


def camel(name: str) -> str:
    """The JSON name of a field: camelCase, with the unit suffix `_s` spelled out
    (`timeout_s` -> `timeoutSeconds`, `next_run_at` -> `nextRunAt`).

    The public APIs write every key this way; models opt in with `CAMEL_CASE`.
    """
    if name.endswith("_s"):
        name = name[:-2] + "_seconds"
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


# Model configuration of a camelCase API model: keys are written in camelCase, and read in
# camelCase or as the Python field name (clients written against either still work).
CAMEL_CASE = ConfigDict(
    alias_generator=camel, validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
)
