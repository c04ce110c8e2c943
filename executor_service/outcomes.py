"""Recording outcomes: the attempts that ended, in batches, each batch one transaction.

A batch locks its jobs (in id order, as lease recovery does), records the executions still
RUNNING, moves each job still RUNNING under the dispatch's fencing token to its next state
(`libs.scheduling.occurrences`: next occurrence, completion, retry, failure, a pause with its status
reason when the target asked never to be called again, or a pause at the next occurrence after
a run requested on a paused job), stores dead letters and notifies sleeping schedulers of the
earliest new `next_run_at`. After the commit each execution it recorded is logged
(`execution_finished`), the dead letters are published to the dead-letter topic, and the
batch's messages are reported recorded (their offsets may then be committed).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from aiokafka import TopicPartition
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from executor_service import repository
from executor_service.decisions import Result, dead_letter_error, dead_letter_reason, next_state
from executor_service.metrics import ExecutorMetrics
from executor_service.settings import Settings
from libs.contracts import messages
from libs.infra import db, kafka, log, loops
from libs.infra.errors import BrokerUnavailable
from libs.scheduling import occurrences
from libs.store import occurrence_store

PUBLISH_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Fetched:
    """A consumed message: where it came from, for its offset to be committed once finished."""

    partition: TopicPartition
    offset: int
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Outcome:
    fetched: Fetched
    dispatch: messages.DispatchMessage
    result: Result
    duration_s: float  # how long the attempt ran, by the executor's monotonic clock
    # When the attempt ended, by the database's clock as the claim read it and the monotonic
    # clock since: the execution's `finished_at`, however long the outcome waits to be written.
    ended_at: datetime | None = None


class OutcomeWriter:
    """Records outcomes in batches: each batch is one transaction that locks the jobs, records
    the executions' outcomes, moves each job on (`libs.scheduling.occurrences`) if it is still
    RUNNING under the dispatch's fencing token, and stores dead letters; then publishes those to the
    dead-letter topic and reports the batch recorded."""

    def __init__(
        self,
        *,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        producer: kafka.Producer,
        metrics: ExecutorMetrics,
        recorded: Callable[[Sequence[Outcome]], None],
        draw: Callable[[], float] = random.random,
    ):
        self._settings = settings
        self._sessions = sessions
        self._producer = producer
        self._metrics = metrics
        self._recorded = recorded
        self._draw = draw
        self._queue: list[Outcome] = []
        self._wake = asyncio.Event()

    def submit(self, outcome: Outcome) -> None:
        self._queue.append(outcome)
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Write batches until `stop` is set and the queue is empty. A database that refuses
        is retried with a backoff; a shutdown bounds the wait by cancelling this task (what is
        left is redelivered, or recovered by its lease)."""
        settings = self._settings
        drained = asyncio.Event()  # stopping with nothing left to write: the loop's own stop
        report = loops.ErrorReport(self._metrics.loop_errors, "outcomes", "outcomes_not_recorded")

        async def write_next() -> float:
            if not self._queue:
                if stop.is_set():
                    drained.set()
                    return 0.0
                self._wake.clear()
                waiter = asyncio.ensure_future(self._wake.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
                return 0.0
            if len(self._queue) < settings.outcome_batch_size and not stop.is_set():
                # Let the outcomes finishing at about the same time join this transaction.
                await asyncio.sleep(settings.outcome_flush_interval_s)
            batch = self._queue[: settings.outcome_batch_size]
            await self.write(batch)
            del self._queue[: len(batch)]
            self._recorded(batch)
            return 0.0

        def report_unwritten(exc: BaseException, retry_in_s: float) -> None:
            report(exc, retry_in_s, count=min(len(self._queue), settings.outcome_batch_size))

        await loops.run(
            write_next,
            stop=drained,
            backoff=loops.ErrorBackoff(
                settings.error_backoff_initial_s, settings.error_backoff_max_s
            ),
            report=report_unwritten,
        )

    async def write(self, batch: Sequence[Outcome]) -> None:
        letters: list[tuple[occurrence_store.DeadLetter, Outcome]] = []
        decisions: list[tuple[Outcome, occurrences.Next]] = []
        async with db.transaction(self._sessions) as session:
            locked = await repository.lock_and_finish(
                session,
                [(o.dispatch.job_id, o.dispatch.lease_version) for o in batch],
                [
                    repository.Finished(
                        o.dispatch.execution_id,
                        o.result.status,
                        o.result.error_kind,
                        o.result.error,
                        o.ended_at,
                    )
                    for o in batch
                ],
            )
            db_now, running, recorded = locked.db_now, locked.running, locked.recorded
            moves: list[occurrence_store.Move] = []
            for outcome in batch:
                job = running.get(outcome.dispatch.job_id)
                if job is None:
                    self._metrics.fenced_off.inc()
                    log.get().info(
                        "outcome_fenced_off",
                        job_id=str(outcome.dispatch.job_id),
                        execution_id=str(outcome.dispatch.execution_id),
                        lease_version=outcome.dispatch.lease_version,
                    )
                    continue
                assert db_now is not None  # a job was found, so its row brought the clock
                # Decided as of when the attempt ended (a fixed delay counts from there), not
                # when its batch was written.
                ended = recorded.get(outcome.dispatch.execution_id, db_now)
                decided = self._decide(outcome, job, ended)
                decisions.append((outcome, decided))
                moves.append(
                    occurrence_store.Move.of(
                        job.job_id,
                        outcome.dispatch.lease_version,
                        decided,
                        nominal=job.occurrence_at,
                    )
                )
                if decided.dead_letter:
                    letters.append((self._dead_letter(outcome, job), outcome))
            moved = await occurrence_store.move_running(session, moves, recorded=True, notify=True)
            letters = [(letter, o) for letter, o in letters if letter.job_id in moved]
            stored = await occurrence_store.insert_dead_letters(
                session, [letter for letter, _ in letters]
            )
        self._count(decisions, moved)
        self._log_finished(batch, recorded, decisions, moved)
        if letters:
            await self._publish_dead_letters(letters, stored)

    def _decide(self, outcome: Outcome, job: repository.Running, now: datetime) -> occurrences.Next:
        parsed = occurrences.readable(job.schedule)
        if parsed is None:
            log.get().error("job_schedule_unreadable", job_id=str(job.job_id))
        return next_state(
            outcome.result,
            scheduled_for=outcome.dispatch.scheduled_for,
            attempt=outcome.dispatch.attempt,
            run_count=job.run_count,
            schedule=parsed,
            retry_policy=job.retry_policy,
            pause_after_run=job.pause_after_run,
            now=now,
            random=self._draw(),
        )

    @staticmethod
    def _dead_letter(outcome: Outcome, job: repository.Running) -> occurrence_store.DeadLetter:
        result = outcome.result
        return occurrence_store.DeadLetter(
            job_id=job.job_id,
            execution_id=outcome.dispatch.execution_id,
            owner_id=job.owner_id,
            reason=dead_letter_reason(result),
            error=dead_letter_error(result),
            attempts=outcome.dispatch.attempt,
            payload=job.payload,
        )

    def _count(self, decisions: Sequence[tuple[Outcome, occurrences.Next]], moved: set) -> None:
        for outcome, decided in decisions:
            if outcome.dispatch.job_id not in moved:
                continue
            job_type = outcome.dispatch.type
            if decided.outcome is occurrences.Outcome.RETRY:
                self._metrics.retries.labels(job_type).inc()
            if decided.dead_letter:
                reason = dead_letter_reason(outcome.result)
                self._metrics.dead_letters.labels(job_type, reason).inc()
            if decided.outcome is occurrences.Outcome.PAUSED:
                self._metrics.paused.labels(job_type).inc()
                log.get().warning(
                    "job_paused_by_target",
                    job_id=str(outcome.dispatch.job_id),
                    execution_id=str(outcome.dispatch.execution_id),
                    reason=decided.reason,
                )

    @staticmethod
    def _log_finished(
        batch: Sequence[Outcome],
        recorded: Mapping[uuid.UUID, datetime],
        decisions: Sequence[tuple[Outcome, occurrences.Next]],
        moved: set[uuid.UUID],
    ) -> None:
        """One `execution_finished` line per execution this committed batch recorded: only one
        transaction can record an execution (it must still be RUNNING), so a redelivered or
        retried outcome is never logged twice. An outcome refused because lease recovery had
        already marked its execution LOST gets no line (its job's `outcome_fenced_off` says so).
        `then` is what became of the job, None when the job had moved on without this outcome
        (paused, cancelled, taken over). The error's kind is logged, never its text: that may
        quote the target's answer or the payload."""
        then = {o.dispatch.execution_id: d for o, d in decisions if o.dispatch.job_id in moved}
        logger = log.get()
        for outcome in batch:
            dispatch, result = outcome.dispatch, outcome.result
            if dispatch.execution_id not in recorded:
                continue
            decided = then.get(dispatch.execution_id)
            logger.info(
                "execution_finished",
                job_id=str(dispatch.job_id),
                execution_id=str(dispatch.execution_id),
                type=dispatch.type,
                status=result.status.value,
                attempt=dispatch.attempt,
                duration_ms=round(outcome.duration_s * 1000, 1),
                error_kind=result.error_kind,
                then=decided.outcome.value if decided else None,
                next_run_at=decided.next_run_at.isoformat()
                if decided and decided.next_run_at
                else None,
            )

    async def _publish_dead_letters(
        self,
        letters: Sequence[tuple[occurrence_store.DeadLetter, Outcome]],
        stored: dict,
    ) -> None:
        """The dead-letter topic is told after the table has the record; a failure here is
        logged, not retried (the table, listed by the API, is what counts)."""
        batch = []
        for letter, outcome in letters:
            dead_letter_id, created_at = stored[letter.execution_id]
            message = messages.DeadLetterMessage(
                dead_letter_id=dead_letter_id,
                job_id=letter.job_id,
                execution_id=letter.execution_id,
                owner_id=letter.owner_id,
                type=outcome.dispatch.type,
                reason=letter.reason,
                error_kind=outcome.result.error_kind,
                error=outcome.result.error,
                attempts=letter.attempts,
                scheduled_for=outcome.dispatch.scheduled_for,
                payload=letter.payload,
                created_at=created_at,
            )
            envelope = messages.dead_letter_envelope(message, producer=self._settings.node_id)
            batch.append((str(letter.job_id), kafka.encode(envelope)))
        acks = await self._producer.send_all(
            self._settings.kafka_dead_letter_topic,
            batch,
            timeout_s=PUBLISH_TIMEOUT_S,
        )
        failed = [a for a in acks if isinstance(a, BrokerUnavailable)]
        if failed:
            log.get().error(
                "dead_letters_not_published", count=len(failed), error=str(failed[0])[:200]
            )
