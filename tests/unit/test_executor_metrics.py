"""The executor's per-attempt metrics: counted by job type and outcome, timed by job type."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from executor_service.metrics import ExecutorMetrics
from libs.scheduling.states import ExecutionStatus


def test_each_ended_attempt_is_counted_and_timed_under_its_type_and_outcome():
    registry = CollectorRegistry()
    metrics = ExecutorMetrics(registry)

    metrics.attempt_ended("http", ExecutionStatus.SUCCEEDED, 0.2)
    metrics.attempt_ended("http", ExecutionStatus.SUCCEEDED, 0.4)
    metrics.attempt_ended("http", ExecutionStatus.TIMED_OUT, 30.0)
    metrics.attempt_ended("log", ExecutionStatus.FAILED, 0.001)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("executor_executions_total", type="http", outcome="succeeded") == 2
    assert value("executor_executions_total", type="http", outcome="timed_out") == 1
    assert value("executor_executions_total", type="log", outcome="failed") == 1
    assert value("executor_run_duration_seconds_count", type="http") == 3
    assert value("executor_run_duration_seconds_sum", type="http") == pytest.approx(30.6)
    assert value("executor_run_duration_seconds_count", type="log") == 1
