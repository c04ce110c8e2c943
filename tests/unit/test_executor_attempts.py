"""How the executor classifies the end of an attempt: every failure kind, from real strategy
objects (no database or broker: `_attempt` only runs the strategy and hands how it ended to
`executor_service.decisions`)."""

from __future__ import annotations

import asyncio
import email.utils
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from prometheus_client import CollectorRegistry

from executor_service.executor import Executor
from executor_service.metrics import ExecutorMetrics
from executor_service.registry import Strategies
from executor_service.settings import Settings
from executor_service.strategies import http
from executor_service.strategies.kafka import KafkaStrategy
from executor_service.strategy import (
    PermanentFailure,
    Resources,
    Run,
    TargetGone,
    TransientFailure,
)
from libs.contracts import messages
from libs.scheduling import job_types
from libs.scheduling.job_types import HttpPayload, KafkaPayload
from libs.scheduling.states import ExecutionStatus

SETTINGS = Settings(database_url="postgresql://unused", kafka_bootstrap_servers="unused")


class Scripted:
    """A strategy that does what it is told: return, sleep, or raise."""

    def __init__(self, *, raises: BaseException | None = None, sleeps: float = 0.0):
        self.raises = raises
        self.sleeps = sleeps

    async def run(self, payload, run) -> None:
        if self.sleeps:
            await asyncio.sleep(self.sleeps)
        if self.raises is not None:
            raise self.raises


def dispatch(type_name: str = "log", payload: dict | None = None, timeout_s: int = 5):
    now = datetime.now(UTC)
    return messages.DispatchMessage(
        execution_id=uuid.uuid4(),
        job_id=uuid.uuid4(),
        owner_id=uuid.uuid4(),
        lease_version=1,
        type=type_name,
        payload={"message": "x"} if payload is None else payload,
        scheduled_for=now,
        attempt=1,
        deadline=now,
        timeout_s=timeout_s,
        trace_id="t" * 32,
    )


def executor(strategy) -> Executor:
    return Executor(
        settings=SETTINGS,
        sessions=None,
        producer=None,
        types=job_types.JobTypes(job_types.BUILT_IN),
        strategies=Strategies({"log": strategy}),
        metrics=ExecutorMetrics(CollectorRegistry()),
    )


@pytest.mark.parametrize(
    ("strategy", "status", "kind", "retryable"),
    [
        (Scripted(), ExecutionStatus.SUCCEEDED, None, False),
        (Scripted(raises=PermanentFailure("no", kind="http_4xx")), ExecutionStatus.FAILED,
         "http_4xx", False),
        (Scripted(raises=TransientFailure("later", kind="http_5xx")), ExecutionStatus.FAILED,
         "http_5xx", True),
        (Scripted(raises=RuntimeError("bug")), ExecutionStatus.FAILED, "unexpected", True),
        # A strategy's own timeout (not the job's) is transient too.
        (Scripted(raises=TimeoutError()), ExecutionStatus.FAILED, "timeout", True),
    ],
)  # fmt: skip
async def test_each_way_an_attempt_ends_is_classified(strategy, status, kind, retryable):
    result = await executor(strategy)._attempt(dispatch())
    assert (result.status, result.error_kind, result.retryable) == (status, kind, retryable)


async def test_a_target_gone_fails_the_attempt_for_good_and_asks_for_a_pause():
    gone = TargetGone("HTTP 410", kind="gone", reason="target answered 410 Gone")

    result = await executor(Scripted(raises=gone))._attempt(dispatch())

    assert (result.status, result.error_kind, result.retryable) == (
        ExecutionStatus.FAILED,
        "gone",
        False,
    )
    assert result.pause_reason == "target answered 410 Gone"


async def test_the_jobs_timeout_cancels_the_strategy_and_is_retryable():
    started = asyncio.get_running_loop().time()
    result = await executor(Scripted(sleeps=30))._attempt(dispatch(timeout_s=1))
    assert (result.status, result.error_kind, result.retryable) == (
        ExecutionStatus.TIMED_OUT,
        "timeout",
        True,
    )
    assert 1.0 <= asyncio.get_running_loop().time() - started < 2.0


@pytest.mark.parametrize(
    ("type_name", "payload"), [("log", {"message": ""}), ("log", {"nope": 1}), ("ftp", {})]
)
async def test_a_payload_or_type_that_cannot_run_fails_permanently(type_name, payload):
    result = await executor(Scripted())._attempt(dispatch(type_name, payload))
    assert (result.status, result.error_kind, result.retryable) == (
        ExecutionStatus.FAILED,
        "validation",
        False,
    )


class RefusingProducer:
    """Stands in for the broker's answer to one publish (classification is pure logic)."""

    def __init__(self, error: Exception):
        self.error = error

    async def send_and_wait(self, *args, **kwargs):
        raise self.error


@pytest.mark.parametrize(
    ("error", "failure", "kind"),
    [
        (KafkaConnectionError(), TransientFailure, "kafka_unavailable"),
        (MessageSizeTooLargeError(), PermanentFailure, "kafka_refused"),
    ],
)
async def test_the_kafka_type_tells_an_unavailable_broker_from_a_refused_message(
    error, failure, kind
):
    strategy = KafkaStrategy(Resources(SETTINGS, None, RefusingProducer(error)))
    d = dispatch("kafka")
    run = Run(d.execution_id, d.job_id, d.owner_id, d.type, d.scheduled_for, 1, 5, d.trace_id)
    with pytest.raises(failure) as caught:
        await strategy.run(KafkaPayload(topic="t", value=1), run)
    assert caught.value.kind == kind


NOW = 1_800_000_000.0  # a Unix time


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        (b"120", 120.0),
        (b" 7 ", 7.0),
        (email.utils.formatdate(NOW + 30, usegmt=True).encode(), 30.0),
        (email.utils.formatdate(NOW - 30, usegmt=True).encode(), 0.0),  # a date passed: now
        (b"9999999999", http.MAX_RETRY_AFTER_S),
        (b"soon", None),
        (b"-5", None),
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(header, expected):
    assert http.parse_retry_after(header, NOW) == expected


@pytest.mark.parametrize(("status", "kind"), [(429, "http_429"), (503, "http_5xx")])
def test_a_transient_status_carries_the_retry_after(status, kind):
    payload = HttpPayload(url="https://example.com/hook")
    with pytest.raises(TransientFailure) as caught:
        http.classify(payload, status, "", retry_after_s=12.0)
    assert (caught.value.kind, caught.value.retry_after_s) == (kind, 12.0)


def test_410_gone_asks_for_the_job_to_be_paused():
    payload = HttpPayload(url="https://example.com/hook")
    with pytest.raises(TargetGone) as caught:
        http.classify(payload, 410, "no such hook")
    assert (caught.value.kind, caught.value.pause_reason) == ("gone", "target answered 410 Gone")
    assert str(caught.value) == "HTTP 410: no such hook"
    assert isinstance(caught.value, PermanentFailure)  # never retried


def test_a_410_the_job_expects_is_a_success():
    http.classify(HttpPayload(url="https://example.com/hook", expected_status=["410"]), 410, "")
