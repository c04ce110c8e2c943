"""How the scheduler's loops report the errors they back off from (`libs.loops` paces them)."""

from __future__ import annotations

from libs import log
from scheduler_service import errors
from scheduler_service.metrics import SchedulerMetrics


def report_error(loop: str, exc: BaseException, delay_s: float, metrics: SchedulerMetrics) -> None:
    """Log a loop's error (with a traceback when it is not an expected, transient one)."""
    metrics.loop_errors.labels(loop).inc()
    fields = {"loop": loop, "retry_in_s": round(delay_s, 3), "error": str(exc)[:500]}
    if isinstance(exc, errors.TRANSIENT):
        log.get().warning("scheduler_loop_error", error_type=type(exc).__name__, **fields)
    else:
        log.get().error("scheduler_loop_failed", exc_info=exc, **fields)
