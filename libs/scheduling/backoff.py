"""Retry delays: exponential backoff with full jitter, capped. Pure functions, no clock.

A job's `retry_policy` (JSONB) holds `max_attempts`, `initial_backoff_s`, `multiplier` and
`max_backoff_s`; `RetryPolicy.load` reads it, a key that is absent taking the field's default,
so the empty policy a job gets from the database default is usable as it is. The defaults are
written here once: the job service's API model takes them from `RetryPolicy`.

Full jitter ("Exponential Backoff And Jitter", AWS Architecture Blog, 2015): the delay before
the next attempt is drawn uniformly from [0, min(cap, initial * multiplier ** (attempt - 1))).
Spreading retries over the whole window is what keeps many jobs failing at once (a target that
went down) from coming back at once.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The attempts of one occurrence and the waits between them, as a job stores them."""

    max_attempts: int = 3
    initial_backoff_s: float = 1.0
    multiplier: float = 2.0
    max_backoff_s: float = 300.0

    @classmethod
    def load(cls, stored: Mapping[str, Any] | None) -> Self:
        """The policy a job's `retry_policy` column holds; raises `ValueError` for a value that
        is not a finite number."""
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            value = (stored or {}).get(field.name)
            if value is None:
                continue
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(f"retry policy: {field.name} must be finite, not {value!r}")
            values[field.name] = int(number) if field.type == "int" else number
        return cls(**values)

    def stored(self) -> dict[str, Any]:
        """The form the `retry_policy` column holds."""
        return dataclasses.asdict(self)


DEFAULT = RetryPolicy()


def max_attempts(policy: RetryPolicy) -> int:
    """How many attempts an occurrence gets in all (the first try included), at least 1."""
    return max(1, policy.max_attempts)


def backoff_cap_s(policy: RetryPolicy, attempt: int) -> float:
    """The upper bound of the delay after failed attempt `attempt` (1 for the first try):
    `initial * multiplier ** (attempt - 1)`, never above `max_backoff_s`, never negative."""
    if attempt < 1:
        raise ValueError(f"attempt must be at least 1, not {attempt}")
    initial = max(0.0, policy.initial_backoff_s)
    multiplier = max(1.0, policy.multiplier)
    cap = max(0.0, policy.max_backoff_s)
    if initial == 0.0 or cap == 0.0:
        return 0.0
    # Computed in logarithms: multiplier ** attempt overflows a float long before attempts run
    # out, even when a tiny `initial` keeps the product itself below the cap.
    exponent = attempt - 1
    if math.log(initial) + exponent * math.log(multiplier) >= math.log(cap):
        return cap
    try:
        return min(cap, initial * multiplier**exponent)  # exact where it is representable
    except OverflowError:
        return min(cap, math.exp(math.log(initial) + exponent * math.log(multiplier)))


def retry_delay_s(
    policy: RetryPolicy, attempt: int, random: float, *, at_least_s: float | None = None
) -> float:
    """Seconds to wait after failed attempt `attempt` before the next one.

    `random` is a uniform draw from [0, 1) supplied by the caller (`random.random()`), so the
    function is deterministic and testable; the result lies in [0, backoff_cap_s(...)).
    `at_least_s` is what the target asked for (HTTP `Retry-After`): the delay is raised to it,
    but never above the policy's `max_backoff_s`, so a target cannot park a job for days.
    """
    if not 0.0 <= random < 1.0:
        raise ValueError(f"random must lie in [0, 1), not {random}")
    delay = random * backoff_cap_s(policy, attempt)
    if at_least_s is not None and at_least_s > delay:
        delay = min(at_least_s, max(delay, policy.max_backoff_s))
    return delay
