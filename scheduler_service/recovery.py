"""Lease recovery: RUNNING jobs whose lease expired go back to SCHEDULED.

A dispatch lease expires before any executor started the dispatch when it was never published
(the scheduler died between commit and publish), the broker lost it, or no executor took it in
time: the claim is undone and the job dispatched again, at the same occurrence and attempt (an
infrastructure fault uses none of the job's attempts). A running lease expires when the
executor that started the attempt died or stalled: the execution is marked LOST and the job
goes back to SCHEDULED under its retry policy (the attempt counts: the target may have seen
it). Any number of schedulers run
this loop: `FOR UPDATE SKIP LOCKED` gives each expired job to one of them, and every change is
guarded by the job's fencing token, so an executor that wakes up late cannot overwrite it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from libs.infra import db, log, loops
from libs.infra.notifications import Wakeup
from libs.store import occurrence_store
from scheduler_service import repository, service
from scheduler_service.metrics import SchedulerMetrics
from scheduler_service.settings import Settings


class Recovery:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        metrics: SchedulerMetrics,
        wakeup: Wakeup | None = None,
        random_draw: Callable[[], float] = random.random,
    ):
        """`wakeup` (the dispatcher's) is rung when jobs were put back: they are due again now
        or at their retry time, and nothing else would tell the dispatcher."""
        self._sessions = sessions
        self._settings = settings
        self._metrics = metrics
        self._wakeup = wakeup or Wakeup()
        self._random = random_draw

    async def run(self, stop: asyncio.Event) -> None:
        settings = self._settings

        async def recover_all() -> float:
            """Batches until one is not full (a backlog is recovered at once)."""
            while await self.recover_batch() >= settings.recovery_batch_size:
                if stop.is_set():
                    break
            return settings.recovery_interval_s

        await loops.run(
            recover_all,
            stop=stop,
            backoff=loops.ErrorBackoff(
                settings.error_backoff_initial_s, settings.error_backoff_max_s
            ),
            report=loops.ErrorReport.of_service("scheduler", "recovery", self._metrics.loop_errors),
        )

    async def recover_batch(self) -> int:
        """Recover up to `recovery_batch_size` expired leases of each kind (never started,
        started) in one transaction; returns how many of either kind were found."""
        batch = self._settings.recovery_batch_size
        async with db.transaction(self._sessions) as session:
            redispatched = await repository.redispatch_unstarted(session, batch=batch)
            expiry = await repository.recover_expired_leases(session, batch=batch)
            plans = [
                service.plan_recovery(job, now=expiry.db_now, random=self._random())
                for job in expiry.expired
            ]
            changed = await occurrence_store.move_running(
                session, [p.change for p in plans], recorded=False, notify=False
            )
            await occurrence_store.insert_dead_letters(
                session,
                [
                    service.lost_dead_letter(job)
                    for job, plan in zip(expiry.expired, plans, strict=True)
                    if plan.gave_up and job.job_id in changed
                ],
            )
        if redispatched or changed:
            self._wakeup.ring()
        self._report_redispatched(redispatched)
        for job, plan in zip(expiry.expired, plans, strict=True):
            if job.job_id not in changed:
                continue
            self._metrics.recoveries.labels(plan.outcome).inc()
            next_run_at = plan.change.next_run_at
            log.get().info(
                "lease_expired",
                job_id=str(job.job_id),
                execution_id=str(job.execution_id) if job.execution_id else None,
                lease_version=job.lease_version,
                attempt=job.attempt,
                outcome=plan.outcome,
                next_run_at=next_run_at.isoformat() if next_run_at else None,
            )
        return max(len(redispatched), len(expiry.expired))

    def _report_redispatched(self, redispatched: list[repository.Redispatched]) -> None:
        if redispatched:
            self._metrics.recoveries.labels("redispatch").inc(len(redispatched))
        for job in redispatched:
            log.get().info(
                "dispatch_expired",
                job_id=str(job.job_id),
                lease_version=job.lease_version,
                attempt=job.attempt,
                outcome="redispatch",
                next_run_at=job.next_run_at.isoformat() if job.next_run_at else None,
            )
