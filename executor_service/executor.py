"""The executor's engine: consume dispatches, claim them, run them, record their outcomes.

The poll loop only fetches and hands off; it fetches when a scheduler says it published
(`fetching`), and otherwise leaves the broker alone. Each fetched batch becomes a task that
decodes the messages and claims them in one transaction (`repository.claim`: DISPATCHED ->
RUNNING, with a running lease that covers the job's timeout); a dispatch that finds nothing to claim
is a duplicate delivery and is skipped. Every claimed dispatch runs as its own task through its
type's strategy, cancelled at the job's timeout. Outcomes go to the `OutcomeWriter`, which
records them in batches; only then is a message finished, and a partition's offsets are
committed up to its first unfinished message (`Offsets`). So:

- a slow target never stalls the poll loop or its partition (up to `max_in_flight` messages
  per process are in hand; beyond, fetching pauses while polling goes on, so the group does
  not consider this member dead);
- a crash loses nothing: what was not recorded is redelivered, and the claim starts each
  execution at most once (an execution left RUNNING by a dead executor is the scheduler's lease
  recovery's to retry);
- a rebalance waits (bounded) for the revoked partitions' messages to be recorded and commits
  them before giving the partitions up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from executor_service import decisions, fetching, repository
from executor_service.decisions import Result
from executor_service.metrics import ExecutorMetrics
from executor_service.offsets import Offsets
from executor_service.outcomes import Fetched, Outcome, OutcomeWriter
from executor_service.registry import Strategies
from executor_service.settings import Settings
from executor_service.strategy import Run
from libs.contracts import messages
from libs.infra import db, kafka, log, loops
from libs.infra.errors import BrokerUnavailable, describe
from libs.infra.notifications import Wakeup
from libs.scheduling import job_types
from libs.scheduling.states import ExecutionStatus

POLL_TIMEOUT_MS = 100
# A fetch sent before the partitions were paused answers at most its wait plus this later.
STALE_FETCH_MARGIN_S = 0.1
# Commits are a broker round trip: at most this often while busy. What a crash leaves
# uncommitted is redelivered, and the claim skips what was started already.
COMMIT_INTERVAL_S = 0.5
# A revoked partition's messages get this long to finish before it is given up, so that the
# group's rebalance (which waits for every member) stays short: what is still running is
# recorded all the same, and the new owner's claim skips its redelivered copy.
REVOKE_DRAIN_MAX_S = 0.5
# Past this long without a successful commit while it has offsets to commit, the member is not
# ready (`/readyz`) and its consumer is rebuilt: the group or the broker lost it.
CONSUMER_FAILING_S = 15.0
LOG_RESET_CHECK_S = 2.0  # how often the positions are compared with the partitions' ends
POSITION_WAIT_S = 0.01  # the poll loop does not wait for a position being reset
# Shutdown: after the attempts' grace period, what is left (recording outcomes, committing,
# leaving the group) gets at most this long in all, whatever the database and broker do.
SHUTDOWN_FINISH_S = 5.0
LEAVE_TIMEOUT_S = 3.0  # at shutdown, to commit what is finished and leave the group
INTERRUPTED_KIND = "interrupted"
INTERRUPTED_RECORDING_S = 1.0  # for cancelled attempts to hand their outcome to the writer
# A dispatch is published at most the scheduler's lookahead (5 s at most) before it is due;
# whatever a message says, it is not held longer than this.
MAX_HOLD_S = 5.0


def seconds_until_due(dispatch: messages.DispatchMessage, db_now: datetime) -> float:
    """How long after a claim at `db_now` (the database's clock) a dispatch is to start: until
    its `due_at` when it was published ahead of it, at most `MAX_HOLD_S`; else at once."""
    if dispatch.due_at is None:
        return 0.0
    return min(MAX_HOLD_S, max(0.0, (dispatch.due_at - db_now).total_seconds()))


class Executor:
    def __init__(
        self,
        *,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        producer: kafka.Producer,
        types: job_types.JobTypes,
        strategies: Strategies,
        metrics: ExecutorMetrics,
        wakeup: Wakeup | None = None,
        listening: Callable[[], bool] = lambda: False,
    ):
        """`wakeup` is rung by the notifications of published dispatches, while `listening`
        says the listener hears them; until then the consumer fetches all the time."""
        self._settings = settings
        self._sessions = sessions
        self._types = types  # whose models validate each payload again before it runs
        self._strategies = strategies
        self.metrics = metrics
        self._offsets = Offsets()
        self._wakeup = wakeup or Wakeup()
        self._listening = listening
        fetch_wait_s = settings.kafka_fetch_max_wait_ms / 1000
        self._pacing = fetching.Pacing(
            idle_interval_s=settings.fetch_idle_interval_s,
            stale_s=fetch_wait_s + STALE_FETCH_MARGIN_S,
        )
        # A fetching poll waits at least for one fetch sent within it to answer.
        self._poll_timeout_ms = max(POLL_TIMEOUT_MS, settings.kafka_fetch_max_wait_ms + 50)
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        # Attempts running (also in `_tasks`): what shutdown interrupts after its grace period.
        self._runs: set[asyncio.Task[None]] = set()
        self._interrupting = False
        self._stop = asyncio.Event()
        self._writer_stop = asyncio.Event()
        self._progress = asyncio.Event()  # set whenever a message finishes
        self._writer = OutcomeWriter(
            settings=settings,
            sessions=sessions,
            producer=producer,
            metrics=metrics,
            recorded=self._recorded,
        )
        self._consumer: AIOKafkaConsumer | None = None
        self._last_commit = 0.0
        self._last_log_check = 0.0
        self._failing_since: float | None = None  # of commits, while there is work to commit
        # A commit failed since the partitions were assigned: the member may have lost its
        # place in the group (the broker restarted without its state), and a broker may take a
        # commit from such a member, which would put the old log's offsets on the new one and
        # skip the new log's first messages. Nothing is committed until the next assignment.
        self._commits_held = False
        self.assigned = asyncio.Event()  # set while this member owns partitions

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def fetching(self) -> bool:
        """A fetch round is under way (`fetching.Pacing`)."""
        return self._pacing.in_round

    def stop(self) -> None:
        """Stop fetching; `run` then finishes what it holds and returns."""
        self._stop.set()
        self._wakeup.ring()

    async def check(self) -> None:
        """The readiness check: a consumer is in the group and its commits go through."""
        if self._consumer is None:
            raise BrokerUnavailable("the consumer is not connected")
        if self._consumer_lost():
            raise BrokerUnavailable(f"offsets not committed for {CONSUMER_FAILING_S} s")

    # --- the poll loop -------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll until `stop`, then drain (`_drain`). Connecting, polling and rebuilding the
        consumer share one backoff: only a poll that went through ends it."""
        settings = self._settings
        backoff = loops.ErrorBackoff(settings.error_backoff_initial_s, settings.error_backoff_max_s)
        writer = asyncio.create_task(self._writer.run(self._writer_stop), name="outcome-writer")

        async def poll() -> float:
            if self._consumer_lost() and await self._reconnect(self._consumer, backoff) is None:
                return 0.0  # stopped while reconnecting
            assert self._consumer is not None
            try:
                await self._poll(self._consumer)
            except KafkaError as exc:
                raise BrokerUnavailable(describe(exc)) from exc
            return 0.0  # the poll itself waits for messages

        try:
            if await self._connect(backoff) is not None:
                await loops.run(
                    poll,
                    stop=self._stop,
                    backoff=backoff,
                    report=loops.ErrorReport(self.metrics.loop_errors, "poll", "poll_failed"),
                )
        finally:
            await self._drain(self._consumer, writer)

    async def _leave(self, consumer: AIOKafkaConsumer | None) -> None:
        """Commit what is finished and leave the group, within `LEAVE_TIMEOUT_S` in all."""
        if consumer is None:
            return
        started = time.monotonic()
        with contextlib.suppress(TimeoutError, KafkaError):
            async with asyncio.timeout(LEAVE_TIMEOUT_S / 2):
                await self._commit(consumer)
        self._consumer = None
        self.assigned.clear()
        remaining_s = LEAVE_TIMEOUT_S - (time.monotonic() - started)
        left = await kafka.stop(consumer, max(0.1, remaining_s))
        log.get().info("group_left", cleanly=left)

    def _consumer_lost(self) -> bool:
        failing = self._failing_since
        return failing is not None and time.monotonic() - failing > CONSUMER_FAILING_S

    async def _reconnect(
        self, consumer: AIOKafkaConsumer | None, backoff: loops.ErrorBackoff
    ) -> AIOKafkaConsumer | None:
        """A new group member in place of one whose commits keep failing (the broker restarted
        without its state, or the group forgot this member and it never noticed). Its
        partitions' unfinished messages are redelivered; the claim skips those started here."""
        log.get().warning("consumer_rebuilt", reason="offsets not committed")
        self.metrics.loop_errors.labels("consumer").inc()
        self._consumer = None
        self.assigned.clear()
        if consumer is not None:
            await kafka.stop(consumer, kafka.STOP_BROKEN_TIMEOUT_S)
        self._offsets.forget(list(self._offsets.partitions()))
        self._failing_since = None
        return await self._connect(backoff)

    async def _connect(self, backoff: loops.ErrorBackoff) -> AIOKafkaConsumer | None:
        """A started group member subscribed to the dispatch topic (also `self._consumer`);
        None when stopped first."""
        settings = self._settings
        if self._stop.is_set():
            return None

        async def start() -> AIOKafkaConsumer:
            consumer = kafka.create_consumer(
                settings,
                group_id=settings.consumer_group,
                session_timeout_ms=settings.consumer_session_timeout_ms,
                heartbeat_interval_ms=settings.consumer_heartbeat_interval_ms,
            )
            consumer.subscribe([settings.kafka_dispatch_topic], listener=_Rebalance(self))
            await kafka.start(consumer)
            return consumer

        self._consumer = await loops.retry(
            start,
            stop=self._stop,
            backoff=backoff,
            report=loops.ErrorReport(self.metrics.loop_errors, "connect", "consumer_not_started"),
        )
        return self._consumer

    async def _poll(self, consumer: AIOKafkaConsumer) -> None:
        free = self._settings.max_in_flight - self._in_flight
        now = time.monotonic()
        wakeup, pacing = self._wakeup, self._pacing
        fetch = free > 0 and pacing.wants_fetch(now, wakeup.rings, listening=self._listening())
        if not fetch:
            consumer.pause(*consumer.assignment())
        elif consumer.paused():
            consumer.resume(*consumer.paused())
        if free <= 0:
            # Full: keep polling (the group must see this member alive) but fetch nothing.
            await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=1)
            fetched = []
        elif fetch:
            asked = min(free, self._settings.fetch_max_records)
            pacing.polling(now, wakeup.rings)
            records = await consumer.getmany(timeout_ms=self._poll_timeout_ms, max_records=asked)
            # Before anything else runs: a round that ends pauses the partitions before the
            # consumer sends another fetch.
            fetched = [
                Fetched(partition, record.offset, record.value)
                for partition, batch in records.items()
                for record in batch
            ]
            # A poll may bring back fewer than it asked for while more is on the broker: the
            # answers of some partitions are still on their way, or were cut at their size limit.
            behind = len(fetched) < asked and await self._behind(consumer)
            pacing.polled(time.monotonic(), fetched=len(fetched), asked=asked, behind=behind)
            if not pacing.wants_fetch(now, wakeup.rings, listening=self._listening()):
                consumer.pause(*consumer.assignment())
        else:
            wakeup.clear()  # a notification from here on ends the wait (and is counted)
            if not pacing.wants_fetch(now, wakeup.rings, listening=self._listening()):
                quiet_s = pacing.quiet_for(now)
                if self._in_flight or self._offsets.to_commit():
                    quiet_s = min(quiet_s, COMMIT_INTERVAL_S)  # offsets to commit soon
                await wakeup.sleep(quiet_s)
            fetched = []
        if fetched:
            for item in fetched:
                self._offsets.fetched(item.partition, item.offset)
            self._in_flight += len(fetched)
            self.metrics.in_flight.set(self._in_flight)
            self._spawn(self._claim_and_run(fetched), self._tasks)
        now = time.monotonic()
        if now - self._last_log_check >= LOG_RESET_CHECK_S:
            self._last_log_check = now
            await self._restart_reset_partitions(consumer)
        if now - self._last_commit >= COMMIT_INTERVAL_S:
            await self._commit(consumer)

    @staticmethod
    async def _behind(consumer: AIOKafkaConsumer) -> bool:
        """Whether a partition holds messages this member has not been given yet, as far as the
        broker's last answers tell (a partition not known at once counts as behind)."""
        for partition in list(consumer.assignment()):
            known = await kafka.position_and_end(consumer, partition, POSITION_WAIT_S)
            if known is None or known[0] < known[1]:
                return True
        return False

    async def _restart_reset_partitions(self, consumer: AIOKafkaConsumer) -> None:
        """A partition whose end is behind this member's position has lost its log (the broker
        restarted without its state, or the topic was recreated), and a broker may answer a
        fetch beyond its end with nothing rather than an error: read it from its start again
        (what was run already is skipped by the claim)."""
        for partition in list(consumer.assignment()):
            # Not known at once (revoked meanwhile, never fetched, awaiting a reset): not checked.
            known = await kafka.position_and_end(consumer, partition, POSITION_WAIT_S)
            if known is None:
                continue
            position, end = known
            if position > end:
                log.get().warning(
                    "partition_log_reset",
                    partition=partition.partition,
                    position=position,
                    end=end,
                )
                self._offsets.forget([partition])
                await consumer.seek_to_beginning(partition)
                self._wakeup.ring()  # the new log is read at once

    @staticmethod
    def _spawn(coroutine: Coroutine[Any, Any, None], *into: set) -> asyncio.Task[None]:
        """A task, kept in each of `into` until it is done."""
        task = asyncio.create_task(coroutine)
        for tasks in into:
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        return task

    async def _commit(self, consumer: AIOKafkaConsumer, only: Iterable | None = None) -> None:
        self._last_commit = time.monotonic()
        owned = consumer.assignment() if only is None else set(only)
        points = {p: o for p, o in self._offsets.to_commit().items() if p in owned}
        if not points:  # nothing owed: whatever failed before was committed or given up
            if only is None:
                self._failing_since = None
            return
        if self._commits_held:
            return  # offered again after the next assignment, if still owned
        try:
            await consumer.commit(points)
        except KafkaError as exc:
            if self._failing_since is None:
                self._failing_since = time.monotonic()
            self._commits_held = True
            log.get().warning("offsets_not_committed", error=describe(exc))
            return
        self._failing_since = None
        self._offsets.committed(points)

    # --- one fetched batch ---------------------------------------------------------------------

    async def _claim_and_run(self, fetched: Sequence[Fetched]) -> None:
        decoded: list[tuple[Fetched, messages.DispatchMessage]] = []
        for item in fetched:
            try:
                decoded.append((item, messages.decode_dispatch(item.value)))
            except kafka.MalformedMessage as exc:
                self.metrics.skipped.labels("malformed").inc()
                log.get().error(
                    "dispatch_malformed",
                    partition=item.partition.partition,
                    offset=item.offset,
                    error=str(exc)[:200],
                )
                self._finished([item])
        # Copies of one dispatch in one fetch (the broker may deliver a message twice) would all
        # find it claimed by this batch's claim: only the first is run.
        firsts: dict[uuid.UUID, tuple[Fetched, messages.DispatchMessage]] = {}
        skipped: list[Fetched] = []
        for item, dispatch in decoded:
            if dispatch.execution_id in firsts:
                self._skip(skipped, item, dispatch, "a copy of a dispatch in the same fetch")
            else:
                firsts[dispatch.execution_id] = (item, dispatch)
        claimed = await self._claim([d for _, d in firsts.values()]) if firsts else None
        claim, claimed_at = claimed if claimed is not None else (None, 0.0)
        for item, dispatch in firsts.values():
            if claim is None:  # stopping with the database away: redelivered to the next owner
                self._abandoned([item])
            elif dispatch.execution_id in claim.started:
                clock = (claim.db_now, claimed_at)
                self._spawn(self._execute(item, dispatch, clock), self._tasks, self._runs)
            else:
                self._skip(skipped, item, dispatch, "already started, or its job moved on")
        if skipped:
            self.metrics.skipped.labels("duplicate").inc(len(skipped))
            self._finished(skipped)

    @staticmethod
    def _skip(
        skipped: list[Fetched], item: Fetched, dispatch: messages.DispatchMessage, reason: str
    ) -> None:
        skipped.append(item)
        log.get().info(
            "dispatch_skipped",
            execution_id=str(dispatch.execution_id),
            job_id=str(dispatch.job_id),
            reason=reason,
        )

    async def _claim(
        self, dispatches: Sequence[messages.DispatchMessage]
    ) -> tuple[repository.Claim, float] | None:
        """The claim, and the monotonic time its statement returned: the database's clock was
        at least `db_now` then, which is what dispatches published ahead are held by."""
        settings = self._settings
        backoff = loops.ErrorBackoff(settings.error_backoff_initial_s, settings.error_backoff_max_s)
        wanted = [
            repository.Dispatch(d.execution_id, d.job_id, d.lease_version, d.due_at)
            for d in dispatches
        ]

        async def claim() -> tuple[repository.Claim, float]:
            async with db.transaction(self._sessions) as session:
                claimed = await repository.claim(
                    session, wanted, worker=settings.node_id, margin_s=settings.lease_margin_s
                )
                return claimed, time.monotonic()

        # Stopping with the database away: None, and the dispatches go to the next owner.
        return await loops.retry(
            claim,
            stop=self._stop,
            backoff=backoff,
            report=loops.ErrorReport(self.metrics.loop_errors, "claim", "claim_failed"),
        )

    async def _execute(
        self,
        item: Fetched,
        dispatch: messages.DispatchMessage,
        clock: tuple[datetime, float],
    ) -> None:
        """Run `dispatch` when it is due (at once, unless it was published ahead of it).
        `clock` is the database's time at the claim and the monotonic time then."""
        db_now, claimed_at = clock
        start_at = started = claimed_at + seconds_until_due(dispatch, db_now)
        try:
            if (wait_s := start_at - time.monotonic()) > 0:
                await asyncio.sleep(wait_s)
            started = time.monotonic()
            if dispatch.attempt == 1:  # a retry starts late by design (its backoff)
                due = dispatch.due_at or dispatch.scheduled_for
                lag_s = (db_now - due).total_seconds() + (started - claimed_at)
                self.metrics.start_lag.observe(max(0.0, lag_s))
            result = await self._attempt(dispatch)
        except asyncio.CancelledError:
            if not self._interrupting:
                raise
            # Shutdown cut the attempt short (or its start): it is recorded, to be retried.
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
            message = "the executor shut down before the attempt finished"
            result = Result(ExecutionStatus.FAILED, INTERRUPTED_KIND, message, retryable=True)
        ended = time.monotonic()
        duration_s = ended - started
        self.metrics.attempt_ended(dispatch.type, result.status, duration_s)
        ended_at = db_now + timedelta(seconds=ended - claimed_at)
        self._writer.submit(Outcome(item, dispatch, result, duration_s, ended_at))

    async def _attempt(self, dispatch: messages.DispatchMessage) -> Result:
        """Run one attempt through its strategy; `decisions` classifies how it ended."""
        try:
            payload = self._types.parse_payload(dispatch.type, dispatch.payload)
        except job_types.JobTypeError as exc:
            return decisions.unrunnable(str(exc))
        strategy = self._strategies.get(dispatch.type)
        if strategy is None:
            return decisions.unrunnable(f"no strategy for job type {dispatch.type!r}")
        run = Run(
            execution_id=dispatch.execution_id,
            job_id=dispatch.job_id,
            owner_id=dispatch.owner_id,
            type=dispatch.type,
            scheduled_for=dispatch.scheduled_for,
            attempt=dispatch.attempt,
            timeout_s=dispatch.timeout_s,
            trace_id=dispatch.trace_id,
        )
        ended: Exception | None = None
        try:
            async with asyncio.timeout(dispatch.timeout_s) as deadline:
                await strategy.run(payload, run)
        except Exception as exc:
            ended = exc
            if decisions.is_unexpected(exc):
                log.get().error(
                    "strategy_crashed",
                    type=dispatch.type,
                    job_id=str(dispatch.job_id),
                    exc_info=exc,
                )
        return decisions.classify(
            ended, deadline_expired=deadline.expired(), timeout_s=dispatch.timeout_s
        )

    # --- finishing messages --------------------------------------------------------------------

    def _recorded(self, outcomes: Sequence[Outcome]) -> None:
        self._finished([o.fetched for o in outcomes])

    def _finished(self, items: Sequence[Fetched]) -> None:
        for item in items:
            self._offsets.finished(item.partition, item.offset)
        self._abandoned(items)

    def _abandoned(self, items: Sequence[Fetched]) -> None:
        self._in_flight -= len(items)
        self.metrics.in_flight.set(self._in_flight)
        self._progress.set()

    async def _wait_finished(self, partitions: Iterable | None, timeout_s: float) -> bool:
        """Wait until the messages of `partitions` (all when None) are finished; False when
        `timeout_s` passed first."""
        chosen = None if partitions is None else list(partitions)
        deadline = time.monotonic() + timeout_s
        while self._offsets.unfinished(chosen) > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._progress.wait()
        return True

    def assignment_changed(self) -> None:
        """The group has (re)admitted this member: its commits count again, and it fetches
        at once what its partitions hold (a member that left may have left messages there)."""
        self._commits_held = False
        self._wakeup.ring()

    async def release(self, partitions: Sequence[TopicPartition]) -> None:
        """Partitions are being revoked: let their messages finish (bounded), commit them, and
        stop tracking them. Whatever is still running is recorded all the same; its message is
        redelivered to the new owner, whose claim finds the execution started and skips it."""
        if not partitions:
            return
        self.assigned.clear()
        timeout_s = min(REVOKE_DRAIN_MAX_S, self._settings.shutdown_grace_s)
        drained = await self._wait_finished(partitions, timeout_s)
        if self._consumer is not None:
            await self._commit(self._consumer, only=partitions)
        self._offsets.forget(partitions)
        log.get().info(
            "partitions_revoked",
            partitions=sorted(p.partition for p in partitions),
            drained=drained,
        )

    async def _wait_tasks(self, timeout_s: float) -> None:
        """Wait up to `timeout_s` for the batches and attempts in hand, including those they
        start meanwhile (a claim starts its attempts)."""
        deadline = time.monotonic() + timeout_s
        while self._tasks and (remaining := deadline - time.monotonic()) > 0:
            await asyncio.wait(list(self._tasks), timeout=remaining)

    async def _drain(self, consumer: AIOKafkaConsumer | None, writer: asyncio.Task) -> None:
        """Shutdown: the member leaves the group at once, so that its partitions go to the
        other executors while its attempts finish (their redelivered copies are skipped there:
        they are started here). What runs gets `shutdown_grace_s` to finish, then is cancelled
        (recorded as interrupted, to be retried); outcomes are recorded within
        `SHUTDOWN_FINISH_S` more, whatever the database and broker do: what is not recorded by
        then is recovered by its lease."""
        leaving = asyncio.create_task(self._leave(consumer), name="leave-group")
        await self._wait_tasks(self._settings.shutdown_grace_s)
        finish_by = time.monotonic() + SHUTDOWN_FINISH_S
        self._interrupting = True
        for task in list(self._runs):
            task.cancel()
        await self._wait_tasks(INTERRUPTED_RECORDING_S)
        for task in list(self._tasks):  # only a claim stuck on an unreachable database
            task.cancel()
        self._writer_stop.set()
        done, _ = await asyncio.wait([writer], timeout=max(0.0, finish_by - time.monotonic()))
        if not done:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            # Counted with every other unfinished message by `executor_stopped` below.
            log.get().error("outcomes_abandoned")
        await leaving  # bounded by LEAVE_TIMEOUT_S, long over by now
        log.get().info("executor_stopped", unfinished=self._in_flight)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, executor: Executor):
        self._executor = executor

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        await self._executor.release(list(revoked))

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self._executor.assignment_changed()
        if assigned:
            self._executor.assigned.set()
        log.get().info("partitions_assigned", partitions=sorted(p.partition for p in assigned))
