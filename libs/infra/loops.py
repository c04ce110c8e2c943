"""What the workers' long-running loops share: a step run until a stop request, waits that the
request cuts short, backing off after errors so that a loop whose database or broker is away
resumes by itself, one way of reporting those errors, and a supervisor that starts a service's
loops and stops them within a grace period.

A loop never dies of one error: a transient fault (`libs.infra.errors`) is logged as a warning, a
bug as an error with its traceback, and either is backed off from. Retrying one operation
(`retry`) is narrower: only transient faults are retried, a bug is raised to the caller.

The retry libraries (tenacity, stamina) retry one call until it succeeds; these loops run for
ever, reset their backoff after each success and wait on a stop event, which those libraries
would need to be bent into, for no fewer lines than these.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

from prometheus_client import Counter

from libs.infra import errors, log

T = TypeVar("T")


class ErrorBackoff:
    """Delays after consecutive errors: `initial_s`, doubling, at most `max_s`; `reset` after a
    success."""

    def __init__(self, initial_s: float, max_s: float):
        self.initial_s = initial_s
        self.max_s = max(max_s, initial_s)
        self._next_s = initial_s

    def next_delay(self) -> float:
        delay = self._next_s
        self._next_s = min(self.max_s, self._next_s * 2)
        return delay

    def reset(self) -> None:
        self._next_s = self.initial_s


async def pause(stop: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds`, or less if `stop` is set meanwhile; True when stopping."""
    if stop.is_set():
        return True
    try:
        async with asyncio.timeout(max(0.0, seconds)):
            await stop.wait()
    except TimeoutError:
        return False
    return True


class Report(Protocol):
    """Reports an error a loop backs off from, and how long it waits before going on."""

    def __call__(self, exc: BaseException, retry_in_s: float, /) -> None: ...


@dataclass(frozen=True, slots=True)
class ErrorReport:
    """How one loop's errors are reported: counted in its service's `loop_errors{loop}`, and
    logged as `event` (`libs.infra.errors.log_fault`: a warning for a transient fault, an error with
    its traceback, as `bug_event` when given, for a bug)."""

    loop_errors: Counter
    loop: str
    event: str
    bug_event: str | None = None

    @classmethod
    def of_service(cls, service: str, loop: str, loop_errors: Counter) -> ErrorReport:
        """`<service>_loop_error` for a transient fault, `<service>_loop_failed` for a bug."""
        return cls(loop_errors, loop, f"{service}_loop_error", f"{service}_loop_failed")

    def __call__(self, exc: BaseException, retry_in_s: float, /, **fields: Any) -> None:
        self.loop_errors.labels(self.loop).inc()
        errors.log_fault(
            self.event,
            exc,
            bug_event=self.bug_event,
            loop=self.loop,
            retry_in_s=round(retry_in_s, 3),
            **fields,
        )


async def run(
    step: Callable[[], Awaitable[float]],
    *,
    stop: asyncio.Event,
    backoff: ErrorBackoff,
    report: Report,
    max_error_delay_s: float | None = None,
    wait: Callable[[float], Awaitable[object]] | None = None,
) -> None:
    """Run `step` until `stop` is set.

    After a success the backoff is reset and the loop waits the seconds the step returned (0:
    the next step at once). After an error (any `Exception`) it reports it and waits the
    backoff's next delay, at most `max_error_delay_s`. A wait is `pause` on `stop` unless
    `wait` says otherwise (a loop with an alarm of its own, which `stop` rings too).
    """
    wait = wait or partial(pause, stop)
    while not stop.is_set():
        try:
            delay = await step()
        except Exception as exc:
            delay = backoff.next_delay()
            if max_error_delay_s is not None:
                delay = min(delay, max_error_delay_s)
            report(exc, delay)
        else:
            backoff.reset()
        if delay > 0:
            await wait(delay)


async def retry(
    attempt: Callable[[], Awaitable[T]],
    *,
    stop: asyncio.Event,
    backoff: ErrorBackoff,
    report: Report,
) -> T | None:
    """`attempt`'s result once it succeeds (it is tried at least once, stopping or not); None
    when `stop` is set while it fails.

    A transient fault is reported and retried after the backoff's next delay (which `stop` cuts
    short); anything else is a bug and is raised. The backoff is not reset: a loop that retries
    within its step resets it when the step succeeds.
    """
    while True:
        try:
            return await attempt()
        except Exception as exc:
            if not errors.is_transient(exc):
                raise
            delay = backoff.next_delay()
            report(exc, delay)
            if await pause(stop, delay):
                return None


class Supervisor:
    """The running loops of one service process: started as named tasks, stopped together.

    `stop` sets `stopping` (what the loops watch) and waits for them; a loop still running after
    the grace period is cancelled and logged as `<service>_loop_cancelled`, one that ended with
    an exception as `<service>_loop_crashed`.
    """

    def __init__(self, service: str):
        self.service = service
        self.stopping = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, name: str, loop: Coroutine[Any, Any, None]) -> None:
        self.tasks.append(asyncio.create_task(loop, name=name))

    async def stop(self, grace_s: float) -> None:
        self.stopping.set()
        if not self.tasks:
            return
        _, pending = await asyncio.wait(self.tasks, timeout=grace_s)
        for task in pending:  # only a loop stuck past the grace period
            log.get().warning(f"{self.service}_loop_cancelled", loop=task.get_name())
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        for task in self.tasks:
            if not task.cancelled() and task.exception() is not None:
                log.get().error(f"{self.service}_loop_crashed", loop=task.get_name(),
                                exc_info=task.exception())  # fmt: skip
