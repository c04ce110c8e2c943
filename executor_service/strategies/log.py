"""The `log` job type: write the payload's message to the executor's log (smoke tests)."""

from __future__ import annotations

from executor_service.strategy import Resources, Run
from libs.infra import log
from libs.scheduling.job_types import LogPayload


class LogStrategy:
    async def run(self, payload: LogPayload, run: Run) -> None:
        log.get().log(
            _LEVELS[payload.level],
            "job_log",
            message=payload.message,
            job_id=str(run.job_id),
            execution_id=str(run.execution_id),
            attempt=run.attempt,
        )


_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


def create(resources: Resources) -> LogStrategy:
    return LogStrategy()
