"""`libs.infra.log`: one JSON object per line with the service's facts and the bound ids, for
structlog events and standard-library records alike; readable lines in development."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from libs.infra import log

SERVICE = "job_service"
NODE_ID = "node-7"


@pytest.fixture(autouse=True)
def sane_logging_afterwards() -> Iterator[None]:
    """Leave logging configured for the console and with no ids bound.

    Autouse, so it is set up before `capsys` and torn down after it: `configure` then binds
    the stream pytest restores, not the capture that is about to close."""
    yield
    log.clear_ids()
    log.configure(service="tests", node_id="tests", log_format="console")


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of `text` as a JSON object (fails on a line that is not one)."""
    return [json.loads(line) for line in text.splitlines() if line]


def configure_json() -> None:
    log.configure(service=SERVICE, node_id=NODE_ID, log_format="json")


def test_a_structlog_event_is_one_json_line_with_service_facts_and_bound_ids(capsys):
    configure_json()
    log.bind_ids(request_id="r1", job_id="j1")

    log.get().info("job_claimed", attempt=2)

    [line] = json_lines(capsys.readouterr().err)
    assert line["event"] == "job_claimed"
    assert line["level"] == "info"
    assert line["attempt"] == 2
    assert (line["service"], line["node_id"]) == (SERVICE, NODE_ID)
    assert (line["request_id"], line["job_id"]) == ("r1", "j1")
    stamped = datetime.fromisoformat(line["timestamp"])
    assert stamped.utcoffset() is not None
    assert stamped.utcoffset().total_seconds() == 0
    assert abs((datetime.now(UTC) - stamped).total_seconds()) < 60


def test_cleared_ids_are_gone_from_later_lines(capsys):
    configure_json()
    log.bind_ids(request_id="r1", job_id="j1")
    log.get().info("lease_renewed")

    log.clear_ids()
    log.get().info("lease_expired")

    bound, cleared = json_lines(capsys.readouterr().err)
    assert (bound["request_id"], bound["job_id"]) == ("r1", "j1")
    assert cleared["event"] == "lease_expired"
    assert "request_id" not in cleared
    assert "job_id" not in cleared
    assert (cleared["service"], cleared["node_id"]) == (SERVICE, NODE_ID)


def test_ids_bound_as_none_are_left_out(capsys):
    configure_json()
    log.bind_ids(request_id="r1", execution_id=None)

    log.get().info("dispatch_published")

    [line] = json_lines(capsys.readouterr().err)
    assert line["request_id"] == "r1"
    assert "execution_id" not in line


def test_a_standard_library_record_becomes_a_json_line_too(capsys):
    configure_json()
    log.bind_ids(request_id="r2")

    logging.getLogger("some.lib").warning("disk %s is %d%% full", "/var", 91)

    [line] = json_lines(capsys.readouterr().err)
    assert line["event"] == "disk /var is 91% full"
    assert line["level"] == "warning"
    assert (line["service"], line["node_id"]) == (SERVICE, NODE_ID)
    assert line["request_id"] == "r2"
    assert datetime.fromisoformat(line["timestamp"]).utcoffset().total_seconds() == 0


def test_an_exception_is_rendered_into_the_json_line(capsys):
    configure_json()

    try:
        raise ValueError("bad cron")
    except ValueError:
        log.get().exception("schedule_rejected")

    [line] = json_lines(capsys.readouterr().err)
    assert line["event"] == "schedule_rejected"
    assert line["level"] == "error"
    assert "ValueError: bad cron" in line["exception"]


def test_console_format_is_readable_not_json(capsys):
    log.configure(service=SERVICE, node_id=NODE_ID, log_format="console")

    log.get().info("job_claimed")

    err = capsys.readouterr().err
    assert "job_claimed" in err
    assert f"service={SERVICE}" in err
    with pytest.raises(json.JSONDecodeError):
        json.loads(err.splitlines()[0])


def test_configure_again_replaces_the_handler_rather_than_adding_one(capsys):
    configure_json()
    configure_json()

    log.get().info("service_started")

    assert len(json_lines(capsys.readouterr().err)) == 1
