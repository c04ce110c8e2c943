"""What a strategy is: the code that runs one type of job, and how it reports failure.

A strategy is built once per executor process by its job type's factory (the executor's own for
a built-in type, `strategies.BUILT_IN`; a plug-in's `libs.scheduling.job_types.JobType.strategy`),
which receives the executor's `Resources`, and then runs any number of occurrences at once:

    class Strategy(Protocol):
        async def run(self, payload: BaseModel, run: Run) -> None: ...
        async def close(self) -> None: ...          # optional

`run` returns normally when the occurrence succeeded. It raises `PermanentFailure` when the
occurrence can never succeed as it is (a retry would fail the same way: the payload or the
target is wrong), `TargetGone` when the target asks never to be called again (the job is then
paused until its owner resumes it), and `TransientFailure` when a later attempt may succeed.
Any other exception counts as transient. The executor cancels `run` at the job's timeout (also
transient), so a strategy needs no timeout of its own beyond what its client library requires.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel

# Strategies describe the failures they report with the workers' one formatter (plug-ins
# written against this module find it here too).
from libs.infra.errors import describe as describe

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from executor_service.settings import Settings
    from libs.infra.kafka import Producer

# Namespace of occurrence keys: uuid5(namespace, "<job id>/<scheduled_for>").
_OCCURRENCE_NAMESPACE = uuid.UUID("6f1d3c1e-4b8a-5d2e-9c7f-2a0b1e3d4c5f")


class Failure(Exception):
    """An occurrence failed. `kind` is a short machine-readable class stored on the execution
    (`error_kind`), such as `http_5xx` or `timeout`; the message must hold no secret."""

    def __init__(self, message: str, *, kind: str):
        super().__init__(message)
        self.kind = kind


class PermanentFailure(Failure):
    """Retrying cannot help: the occurrence ends at once and goes to the dead letters, unless
    `pause_reason` says the job is to be paused instead (`TargetGone`)."""

    pause_reason: str | None = None


class TargetGone(PermanentFailure):
    """The target will never want these calls again (HTTP 410 Gone, as Standard Webhooks has
    it): no retry, and the job is paused with `reason` as its status reason, so that nothing
    calls the target again until the job's owner resumes it. The occurrence is not given up
    on: it stays the job's next, for the resume to run or skip (misfire policy)."""

    def __init__(self, message: str, *, kind: str, reason: str):
        super().__init__(message, kind=kind)
        self.pause_reason = reason


class TransientFailure(Failure):
    """A later attempt may succeed: retried with backoff while attempts remain.
    `retry_after_s`: how long the target asked to be left alone (HTTP `Retry-After`); the
    backoff is raised to it, within the job's `maxBackoffSeconds`."""

    def __init__(self, message: str, *, kind: str, retry_after_s: float | None = None):
        super().__init__(message, kind=kind)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class Run:
    """One attempt of one occurrence, as a strategy sees it."""

    execution_id: uuid.UUID
    job_id: uuid.UUID
    owner_id: uuid.UUID
    type: str
    scheduled_for: datetime
    attempt: int
    timeout_s: int
    trace_id: str

    @property
    def occurrence_key(self) -> str:
        """A key stable across the attempts of one occurrence (and unique to it): what targets
        receive as `webhook-id` and `Idempotency-Key` to make their effects exactly-once."""
        name = f"{self.job_id}/{self.scheduled_for.isoformat()}"
        return f"occ_{uuid.uuid5(_OCCURRENCE_NAMESPACE, name).hex}"


@dataclass(frozen=True, slots=True)
class Resources:
    """What the executor lends its strategies: settings, the database, the Kafka producer."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    producer: Producer


class Strategy(Protocol):
    async def run(self, payload: BaseModel, run: Run) -> None: ...
