"""libs.infra.errors: which faults are transient, the broker's errors as the workers name them, and
the one short description of an exception."""

from __future__ import annotations

import pytest

from libs.infra import db, errors, kafka


@pytest.mark.parametrize(
    "fault",
    [
        errors.DatabaseUnavailable("away"),
        errors.BrokerUnavailable("away"),
        kafka.MessageTooLarge("too large"),
        ConnectionRefusedError(),
        TimeoutError(),
    ],
)
def test_outages_and_network_errors_are_transient(fault):
    assert errors.is_transient(fault)


@pytest.mark.parametrize("bug", [ValueError("x"), KeyError("x"), AssertionError()])
def test_anything_else_is_a_bug(bug):
    assert not errors.is_transient(bug)


def test_the_broker_and_database_errors_are_the_workers_errors():
    assert issubclass(kafka.MessageTooLarge, errors.BrokerUnavailable)
    assert db.DatabaseUnavailable is errors.DatabaseUnavailable


def test_describe_keeps_the_type_and_the_first_line_only():
    assert errors.describe(ValueError("first\nsecond")) == "ValueError: first"
    assert errors.describe(TimeoutError()) == "TimeoutError"
    assert len(errors.describe(RuntimeError("x" * 2000))) == 500
