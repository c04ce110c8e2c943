"""libs.infra.loops: a loop backs off from its step's errors and resumes, a stop request cuts its
waits short, its errors are reported by kind (a transient fault as a warning, a bug as an error
with its traceback), a retried operation retries transient faults only, and the supervisor
stops a service's loops within its grace period."""

from __future__ import annotations

import asyncio
import time

import pytest
import structlog.testing
from prometheus_client import CollectorRegistry, Counter

from libs.infra import errors, loops


def loop_errors() -> Counter:
    return Counter("test_loop_errors_total", "Errors.", ["loop"], registry=CollectorRegistry())


class Recorded:
    """A report that keeps what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[BaseException, float]] = []
        self.reported = asyncio.Event()

    def __call__(self, exc: BaseException, retry_in_s: float, /) -> None:
        self.calls.append((exc, retry_in_s))
        self.reported.set()


async def test_a_step_that_fails_is_backed_off_from_and_the_loop_resumes():
    stop = asyncio.Event()
    outcomes: list[Exception | None] = [
        errors.DatabaseUnavailable("away"),
        errors.DatabaseUnavailable("still away"),
        None,
        ValueError("a bug"),
        None,
    ]
    waits: list[float] = []
    report = Recorded()

    async def step() -> float:
        outcome = outcomes.pop(0)
        if not outcomes:
            stop.set()
        if outcome is not None:
            raise outcome
        return 7.0

    async def wait(seconds: float) -> None:
        waits.append(seconds)

    await loops.run(
        step,
        stop=stop,
        backoff=loops.ErrorBackoff(0.5, 10),
        report=report,
        wait=wait,
    )

    assert outcomes == []  # every step ran: the loop outlived a bug and an outage
    # Doubling after consecutive errors, the step's own delay after a success, and the backoff
    # back at its start after that success.
    assert waits == [0.5, 1.0, 7.0, 0.5, 7.0]
    assert [(type(exc), delay) for exc, delay in report.calls] == [
        (errors.DatabaseUnavailable, 0.5),
        (errors.DatabaseUnavailable, 1.0),
        (ValueError, 0.5),
    ]


async def test_an_error_delay_is_capped_when_the_loop_asks():
    stop = asyncio.Event()
    report = Recorded()

    async def step() -> float:
        if len(report.calls) == 3:
            stop.set()
        raise errors.BrokerUnavailable("away")

    async def wait(_seconds: float) -> None:
        pass

    await loops.run(
        step,
        stop=stop,
        backoff=loops.ErrorBackoff(1.0, 60),
        report=report,
        max_error_delay_s=1.5,
        wait=wait,
    )
    assert [delay for _, delay in report.calls] == [1.0, 1.5, 1.5, 1.5]


async def test_a_stop_request_cuts_a_wait_short():
    stop = asyncio.Event()
    stepped = asyncio.Event()

    async def step() -> float:
        stepped.set()
        return 3600.0

    started = time.monotonic()
    running = asyncio.create_task(
        loops.run(step, stop=stop, backoff=loops.ErrorBackoff(1, 1), report=Recorded())
    )
    await stepped.wait()
    stop.set()
    await asyncio.wait_for(running, 5)
    assert time.monotonic() - started < 5


async def test_a_stop_request_cuts_an_error_backoff_short():
    stop = asyncio.Event()
    report = Recorded()

    async def step() -> float:
        raise errors.DatabaseUnavailable("away")

    running = asyncio.create_task(
        loops.run(step, stop=stop, backoff=loops.ErrorBackoff(3600, 3600), report=report)
    )
    await asyncio.wait_for(report.reported.wait(), 5)
    stop.set()
    await asyncio.wait_for(running, 5)
    assert len(report.calls) == 1


async def test_a_loop_stopped_before_it_starts_runs_no_step():
    stop = asyncio.Event()
    stop.set()

    async def step() -> float:
        raise AssertionError("no step when stopping")

    await loops.run(step, stop=stop, backoff=loops.ErrorBackoff(1, 1), report=Recorded())


@pytest.mark.parametrize(
    "fault",
    [errors.DatabaseUnavailable("away"), errors.BrokerUnavailable("away"), ConnectionResetError()],
)
def test_a_transient_fault_is_counted_and_logged_as_a_warning_without_traceback(fault):
    counter = loop_errors()
    report = loops.ErrorReport.of_service("scheduler", "recovery", counter)
    with structlog.testing.capture_logs() as logs:
        report(fault, 0.25)
    [line] = logs
    assert line["event"] == "scheduler_loop_error"
    assert line["log_level"] == "warning"
    assert "exc_info" not in line
    assert (line["loop"], line["retry_in_s"]) == ("recovery", 0.25)
    assert line["error_type"] == type(fault).__name__
    assert counter.labels("recovery")._value.get() == 1


def test_a_bug_is_counted_and_logged_as_an_error_with_its_traceback():
    counter = loop_errors()
    report = loops.ErrorReport.of_service("scheduler", "dispatch", counter)
    bug = KeyError("job_id")
    with structlog.testing.capture_logs() as logs:
        report(bug, 0.1)
    [line] = logs
    assert line["event"] == "scheduler_loop_failed"
    assert line["log_level"] == "error"
    assert line["exc_info"] is bug
    assert line["error"] == "KeyError: 'job_id'"
    assert counter.labels("dispatch")._value.get() == 1


def test_a_loop_with_one_event_logs_both_kinds_under_it():
    report = loops.ErrorReport(loop_errors(), "heartbeat", "heartbeat_failed")
    with structlog.testing.capture_logs() as logs:
        report(errors.DatabaseUnavailable("away"), 1.0)
        report(ValueError("a bug"), 2.0)
    assert [(line["event"], line["log_level"]) for line in logs] == [
        ("heartbeat_failed", "warning"),
        ("heartbeat_failed", "error"),
    ]


def test_extra_fields_go_with_the_report():
    report = loops.ErrorReport(loop_errors(), "outcomes", "outcomes_not_recorded")
    with structlog.testing.capture_logs() as logs:
        report(errors.DatabaseUnavailable("away"), 1.0, count=3)
    assert logs[0]["count"] == 3


async def test_retry_returns_the_result_once_a_transient_fault_passes():
    stop = asyncio.Event()
    report = Recorded()
    faults = [OSError("refused"), errors.BrokerUnavailable("away")]

    async def attempt() -> str:
        if faults:
            raise faults.pop(0)
        return "connected"

    backoff = loops.ErrorBackoff(0.001, 0.002)
    assert await loops.retry(attempt, stop=stop, backoff=backoff, report=report) == "connected"
    assert [type(exc) for exc, _ in report.calls] == [OSError, errors.BrokerUnavailable]


async def test_retry_raises_a_bug_at_once():
    report = Recorded()

    async def attempt() -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        await loops.retry(
            attempt, stop=asyncio.Event(), backoff=loops.ErrorBackoff(1, 1), report=report
        )
    assert report.calls == []


async def test_retry_gives_up_when_stopped_while_failing():
    stop = asyncio.Event()
    attempts = 0

    async def attempt() -> None:
        nonlocal attempts
        attempts += 1
        stop.set()
        raise errors.DatabaseUnavailable("away")

    backoff = loops.ErrorBackoff(3600, 3600)
    assert await loops.retry(attempt, stop=stop, backoff=backoff, report=Recorded()) is None
    assert attempts == 1


async def test_retry_tries_once_even_when_stopping():
    stop = asyncio.Event()
    stop.set()

    async def attempt() -> str:
        return "claimed"

    backoff = loops.ErrorBackoff(1, 1)
    assert await loops.retry(attempt, stop=stop, backoff=backoff, report=Recorded()) == "claimed"


# --- the supervisor ----------------------------------------------------------------------------


async def until_stopped(stop: asyncio.Event) -> None:
    await stop.wait()


async def test_the_supervisor_stops_its_loops_within_the_grace_period():
    supervisor = loops.Supervisor("scheduler")
    supervisor.start("heartbeat", until_stopped(supervisor.stopping))
    supervisor.start("lease-recovery", until_stopped(supervisor.stopping))
    with structlog.testing.capture_logs() as logs:
        await asyncio.wait_for(supervisor.stop(grace_s=5), 5)
    assert logs == []
    assert all(task.done() and not task.cancelled() for task in supervisor.tasks)


async def test_a_loop_stuck_past_the_grace_period_is_cancelled():
    supervisor = loops.Supervisor("executor")
    supervisor.start("heartbeat", until_stopped(supervisor.stopping))
    supervisor.start("stuck", asyncio.sleep(3600))
    started = time.monotonic()
    with structlog.testing.capture_logs() as logs:
        await asyncio.wait_for(supervisor.stop(grace_s=0.1), 5)
    assert time.monotonic() - started < 5
    assert [(line["event"], line["loop"]) for line in logs] == [
        ("executor_loop_cancelled", "stuck")
    ]
    stuck = next(task for task in supervisor.tasks if task.get_name() == "stuck")
    assert stuck.cancelled()


async def test_a_loop_that_crashed_is_logged_with_its_exception():
    supervisor = loops.Supervisor("scheduler")
    bug = RuntimeError("a bug")

    async def crash() -> None:
        raise bug

    supervisor.start("dispatcher", crash())
    supervisor.start("heartbeat", until_stopped(supervisor.stopping))
    await asyncio.sleep(0)
    with structlog.testing.capture_logs() as logs:
        await supervisor.stop(grace_s=5)
    [line] = logs
    assert (line["event"], line["loop"], line["log_level"]) == (
        "scheduler_loop_crashed",
        "dispatcher",
        "error",
    )
    assert line["exc_info"] is bug


async def test_a_supervisor_with_nothing_started_stops_at_once():
    supervisor = loops.Supervisor("executor")
    await supervisor.stop(grace_s=5)
    assert supervisor.stopping.is_set()
