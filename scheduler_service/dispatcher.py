"""The dispatch loop: claim due jobs, publish them, hand back what did not go out, sleep.

One batch:
1. one short transaction claims up to `dispatch_batch_size` due jobs (`repository.
   claim_due_jobs`: due within `dispatch_lookahead_s` by the database clock, `FOR UPDATE SKIP
   LOCKED`, set-based), applies the misfire policy to those late beyond their grace, and commits;
2. one message per execution goes to the dispatch topic (key = job id; idempotent producer,
   `acks=all`); all are sent, then every acknowledgement is awaited, and a NOTIFY tells the
   executors that stopped fetching to fetch (`channels.DISPATCHES_PUBLISHED`);
3. what failed to publish is handed back at once, in one transaction, guarded by the fencing
   token. What cannot be handed back (the database is away too) is found by lease recovery.

A claim takes the jobs due within `dispatch_lookahead_s` (the executor holds each until it is
due) and says when the earliest job it left is due. The loop then sleeps until that job enters
the window (capped, and at least half the window after a claim that took jobs: a batch by
time), woken early by a NOTIFY; after a full batch (a backlog) it does not sleep at all.
Errors make it back off and resume by itself.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from libs.contracts import channels, messages
from libs.infra import db, kafka, log, loops, notifications
from libs.infra.errors import BrokerUnavailable, DatabaseUnavailable, is_transient
from libs.infra.notifications import Wakeup
from libs.store import occurrence_store
from scheduler_service import errors, repository, service
from scheduler_service.metrics import SchedulerMetrics
from scheduler_service.settings import Settings

# Due jobs were found but none could be claimed: another scheduler holds them for the few
# milliseconds of its claim. Looking again at once would spin; this is not in any job's lag
# (the other scheduler is dispatching those jobs).
CONTENDED_RETRY_S = 0.005


@dataclass(frozen=True, slots=True)
class Batch:
    """A committed claim, to be published."""

    db_now: datetime  # the database clock at the claim
    started: float  # time.monotonic() when the claim was sent
    locked: int  # due jobs the claim took (claimed, skipped by their misfire policy, ...)
    to_send: list[repository.Claimed]
    next_due: datetime | None = None  # the earliest job the claim left, by the database clock


def next_look_in(batch: Batch, *, lookahead_s: float, now: float) -> float | None:
    """Seconds from `now` (monotonic) until the dispatcher is to claim again after `batch`;
    None when no job is scheduled.

    A job enters the claim's window `lookahead_s` before it is due. One left inside the window
    at the claim is held by another transaction (another scheduler's claim): look again
    shortly. After a claim that took jobs, the next waits at least half the window, so that
    jobs falling due one after the other are claimed together, each still at least half the
    window ahead of its due time."""
    if batch.next_due is None:
        return None
    window_opens_s = (batch.next_due - batch.db_now).total_seconds() - lookahead_s
    if window_opens_s <= 0:
        return CONTENDED_RETRY_S
    if batch.locked:
        window_opens_s = max(window_opens_s, lookahead_s / 2)
    return max(0.0, window_opens_s - (now - batch.started))


@dataclass(frozen=True, slots=True)
class BatchResult:
    locked: int  # due jobs the claim took (claimed, skipped by their misfire policy, ...)
    published: int
    handed_back: int


class Dispatcher:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        producer: kafka.Producer,
        settings: Settings,
        metrics: SchedulerMetrics,
        wakeup: Wakeup,
    ):
        self._sessions = sessions
        self._producer = producer
        self._settings = settings
        self._metrics = metrics
        self._wakeup = wakeup
        self._lease_s = settings.dispatch_lease_s
        self._stop = asyncio.Event()
        self.sleeping = asyncio.Event()  # set while idle until due work or a NOTIFY

    def stop(self) -> None:
        """Claim nothing more; the batch in hand is still published or handed back."""
        self._stop.set()
        self._wakeup.ring()

    async def run(self) -> None:
        """Dispatch until `stop`. Batches are pipelined: while one batch's acknowledgements are
        awaited, the next is claimed (a backlog drains at the pace of the slower of the two
        halves, not of their sum)."""
        settings = self._settings
        backoff = loops.ErrorBackoff(settings.error_backoff_initial_s, settings.error_backoff_max_s)
        full = settings.dispatch_batch_size
        publishing: asyncio.Task[BatchResult] | None = None

        async def dispatch_until_idle() -> float:
            """Batches until the due work is out, then sleep until more is due (or a NOTIFY, or
            `stop`). On an error the batch in hand goes out or is handed back first."""
            nonlocal publishing
            try:
                while not self._stop.is_set():
                    if not self._producer.healthy:
                        # Nothing is claimed until the broker takes messages again.
                        await self._producer.connected(settings.dispatch_publish_timeout_s)
                    self._wakeup.clear()  # before the claim, so a NOTIFY after its look is kept
                    batch = await self.claim_batch()
                    previous, publishing = publishing, self._start_publishing(batch)
                    if previous is not None:
                        await previous  # raises when it had to hand back
                        backoff.reset()  # only a publish that went out ends an error backoff
                    if batch.locked >= full:
                        continue  # a backlog: the next batch at once
                    if publishing is not None:
                        current, publishing = publishing, None
                        await current
                    backoff.reset()
                    delay = next_look_in(
                        batch, lookahead_s=settings.dispatch_lookahead_s, now=time.monotonic()
                    )
                    if delay is None:
                        delay = settings.dispatch_max_sleep_s
                    self.sleeping.set()
                    await self._wakeup.sleep(min(delay, settings.dispatch_max_sleep_s))
                    self.sleeping.clear()
                    break
            except Exception:
                await self._settle(publishing)
                publishing = None
                raise
            return 0.0

        async def back_off(delay_s: float) -> None:
            await self._wakeup.sleep(delay_s)  # `stop` rings the wakeup too
            self._wakeup.clear()  # a NOTIFY does not cut an error backoff short twice

        await loops.run(
            dispatch_until_idle,
            stop=self._stop,
            backoff=backoff,
            report=loops.ErrorReport.of_service("scheduler", "dispatch", self._metrics.loop_errors),
            wait=back_off,
        )
        await self._settle(publishing)
        log.get().info("dispatcher_stopped")

    def _start_publishing(self, batch: Batch) -> asyncio.Task[BatchResult] | None:
        if not batch.to_send:
            return None
        return asyncio.create_task(self.publish_batch(batch), name="dispatch-publish")

    async def _settle(self, publishing: asyncio.Task[BatchResult] | None) -> None:
        """Wait for a batch being published; its failure was handed back and logged."""
        if publishing is None:
            return
        try:
            await publishing
        except Exception as exc:
            if is_transient(exc):
                return  # handed back (or left to lease recovery), and logged, by publish_batch
            errors_total = self._metrics.loop_errors
            loops.ErrorReport.of_service("scheduler", "dispatch", errors_total)(exc, 0.0)

    async def claim_batch(self) -> Batch:
        """One claim transaction: due jobs locked, misfire policies applied, executions
        inserted, committed. Returns what is to be published."""
        started = time.monotonic()
        async with db.transaction(self._sessions) as session:
            claim = await repository.claim_due_jobs(
                session,
                batch=self._settings.dispatch_batch_size,
                lease_s=self._lease_s,
                node_id=self._settings.node_id,
                lookahead_s=self._settings.dispatch_lookahead_s,
            )
            claimed = claim.claimed
            if claim.late:
                claimed = claimed + await self._apply_misfire_policies(session, claim)
            repeated = [c for c in claimed if c.execution_id is None]
            if repeated:
                await self._move_on_from(session, repeated)
        locked = len(claim.claimed) + len(claim.late)
        if locked:
            self._metrics.batch_size.observe(locked)
        return Batch(
            db_now=claim.db_now,
            started=started,
            locked=locked,
            to_send=[c for c in claimed if c.execution_id is not None],
            next_due=claim.next_due,
        )

    async def publish_batch(self, batch: Batch) -> BatchResult:
        """Publish a claimed batch; hand back at once what was not acknowledged, then raise
        `BrokerUnavailable` so the loop backs off."""
        if not batch.to_send:
            return BatchResult(locked=batch.locked, published=0, handed_back=0)
        failed = await self._publish(batch.to_send, batch.db_now, batch.started)
        if len(failed) < len(batch.to_send):
            await self._tell_executors()
        if not failed:
            return BatchResult(locked=batch.locked, published=len(batch.to_send), handed_back=0)
        handed_back = await self._hand_back(failed)
        raise BrokerUnavailable(
            f"{len(failed)} of {len(batch.to_send)} dispatches not published; "
            f"{handed_back} handed back"
        )

    async def _apply_misfire_policies(
        self, session: AsyncSession, claim: repository.Claim
    ) -> list[repository.Claimed]:
        """Decide each late job's occurrence by its misfire policy: run it (claimed like an
        on-time one), or move the job on without running it. Returns the claimed ones."""
        stored = await repository.load_schedules(session, [j.job_id for j in claim.late])
        runs: list[tuple[uuid.UUID, int, datetime]] = []
        moves: list[repository.Skip] = []
        broken: list[tuple[uuid.UUID, int]] = []
        for job in claim.late:
            try:
                plan = service.plan_late(job, stored[job.job_id].schedule, now=claim.db_now)
            except (errors.StoredScheduleInvalid, ValueError) as exc:
                log.get().error("job_schedule_unreadable", job_id=str(job.job_id), error=str(exc))
                broken.append((job.job_id, job.lease_version))
                continue
            if plan.misfired:
                self._metrics.misfires.labels(job.misfire_policy).inc()
                log.get().info(
                    "occurrence_misfired",
                    job_id=str(job.job_id),
                    scheduled_for=job.next_run_at.isoformat(),
                    policy=job.misfire_policy,
                    runs=plan.run_at is not None,
                )
            if plan.run_at is not None:
                runs.append((job.job_id, job.lease_version, plan.run_at))
            else:
                moves.append(plan.skip(job))
        await repository.skip_occurrences(session, moves)
        await repository.fail_jobs(session, broken)
        return await repository.claim_occurrences(
            session, runs, lease_s=self._lease_s, node_id=self._settings.node_id
        )

    async def _move_on_from(
        self, session: AsyncSession, repeated: Sequence[repository.Claimed]
    ) -> None:
        """Claimed occurrences that had an execution row already are not dispatched twice:
        their jobs move on to the following occurrence."""
        stored = await repository.load_schedules(session, [c.job_id for c in repeated])
        moves = []
        for claimed in repeated:
            log.get().warning(
                "occurrence_already_dispatched",
                job_id=str(claimed.job_id),
                scheduled_for=claimed.scheduled_for.isoformat(),
                attempt=claimed.attempt,
            )
            moves.append(service.plan_already_dispatched(claimed, stored[claimed.job_id]))
        await occurrence_store.move_running(session, moves, recorded=False, notify=False)

    async def _publish(
        self, claimed: Sequence[repository.Claimed], db_now: datetime, started: float
    ) -> list[repository.Claimed]:
        """Publish one message per execution; returns those that were not acknowledged."""
        producer_name = self._settings.node_id
        batch = [
            (str(c.job_id), messages.encode_dispatch(dispatch_message(c), producer=producer_name))
            for c in claimed
        ]
        sent_at = time.monotonic()
        acks = await self._producer.send_all(
            self._settings.kafka_dispatch_topic,
            batch,
            timeout_s=self._settings.dispatch_publish_timeout_s,
        )
        failed: list[repository.Claimed] = []
        last_ack = sent_at
        for item, ack in zip(claimed, acks, strict=True):
            if isinstance(ack, BrokerUnavailable):
                failed.append(item)
                continue
            last_ack = max(last_ack, ack)
            # The database's clock at the claim, carried forward by the local monotonic clock:
            # a node whose wall clock is off does not report a false lag.
            lag_s = (db_now - item.scheduled_for).total_seconds() + (ack - started)
            self._metrics.dispatch_lag.observe(max(0.0, lag_s))
        published = len(claimed) - len(failed)
        self._metrics.publish_latency.observe(last_ack - sent_at)
        self._metrics.dispatched.inc(published)
        log.get().debug("dispatch_published", count=published, failed=len(failed))
        return failed

    async def _tell_executors(self) -> None:
        """NOTIFY the executors that messages are on the dispatch topic. Only a hint: an
        executor that misses it fetches them at its idle interval."""
        try:
            await notifications.notify(
                self._sessions, channels.DISPATCHES_PUBLISHED, self._settings.kafka_dispatch_topic
            )
        except DatabaseUnavailable as exc:
            log.get().debug("executors_not_notified", error=str(exc))

    async def _hand_back(self, failed: Sequence[repository.Claimed]) -> int:
        dispatches = [(c.execution_id, c.lease_version) for c in failed if c.execution_id]
        try:
            async with db.transaction(self._sessions) as session:
                handed = await repository.hand_back(session, dispatches)
        except DatabaseUnavailable as exc:
            log.get().error(
                "hand_back_failed", count=len(dispatches), error=str(exc), recovered_by="lease"
            )
            return 0
        self._metrics.handbacks.inc(len(handed))
        log.get().warning(
            "dispatch_handed_back",
            count=len(handed),
            fenced_off=len(dispatches) - len(handed),
        )
        return len(handed)


def dispatch_message(claimed: repository.Claimed) -> messages.DispatchMessage:
    """The dispatch of a claimed execution."""
    assert claimed.execution_id is not None
    return messages.DispatchMessage(
        execution_id=claimed.execution_id,
        job_id=claimed.job_id,
        owner_id=claimed.owner_id,
        lease_version=claimed.lease_version,
        type=claimed.type,
        payload=claimed.payload,
        scheduled_for=claimed.scheduled_for,
        due_at=claimed.due_at,
        attempt=claimed.attempt,
        deadline=claimed.lease_expires_at,
        timeout_s=claimed.timeout_s,
        trace_id=messages.new_trace_id(),
    )
