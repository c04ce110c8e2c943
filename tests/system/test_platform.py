"""`schedctl up` as a user runs it: every part starts and answers, and Ctrl-C or SIGTERM stops
all of it; a part that cannot start is named and nothing is left behind."""

from __future__ import annotations

import signal
import time

import httpx
import psutil
from platform_process import (
    SERVICES,
    START_DEADLINE_S,
    STOP_DEADLINE_S,
    Up,
    free_ports,
    still_running,
)

from schedctl import embedded


def test_up_runs_every_service_until_a_signal_and_keeps_data_across_restarts(tmp_path):
    ports = free_ports()

    first = Up(tmp_path, ports)
    try:
        first.wait_for_line("Press Ctrl-C to stop.", START_DEADLINE_S)
        for service in SERVICES:
            answer = httpx.get(f"http://127.0.0.1:{ports[service]}/readyz", timeout=5)
            assert answer.status_code == 200, (service, answer.text)
            assert answer.json()["status"] == "ready"
            assert all(v == "ok" for v in answer.json()["checks"].values())
            assert (
                "http_requests_total"
                in httpx.get(f"http://127.0.0.1:{ports[service]}/metrics", timeout=5).text
            )
        output = "\n".join(first.seen)
        assert "password: " in output
        assert f"http://127.0.0.1:{ports['job_service']}" in output
        started = first.descendants()
        # PostgreSQL (with its workers), the broker and the five services.
        assert len(started) >= 7
    finally:
        code = first.stop(signal.SIGINT)
    assert code == 0
    assert still_running(started) == []

    second = Up(tmp_path, ports)
    try:
        second.wait_for_line("Press Ctrl-C to stop.", START_DEADLINE_S)
        output = "\n".join(second.seen)
        # The admin created by the first run is still in the database.
        assert "An admin account exists already" in output
        assert "password: " not in output
        started = second.descendants()
    finally:
        code = second.stop(signal.SIGTERM)
    assert code == 0
    assert still_running(started) == []


def test_a_taken_port_is_named_before_anything_starts(tmp_path):
    ports = free_ports()
    with embedded.socket.socket() as blocker:
        blocker.bind(("127.0.0.1", ports["job_service"]))
        blocker.listen()
        up = Up(tmp_path, ports)
        code = up.proc.wait(STOP_DEADLINE_S)
        stderr = up.proc.stderr.read()
    assert code == 1
    assert f"job service (job_service): port {ports['job_service']} is already in use" in stderr
    assert not (tmp_path / "postgres").exists()


def test_a_service_that_fails_to_start_is_named_and_everything_started_is_stopped(tmp_path):
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    # A typo in the executor's own file stops the executor at start.
    (config_dir / "executor_service.properties").write_text("kafka.dispatch.partitons=3\n")
    ports = free_ports()
    up = Up(tmp_path / "data", ports, {"CONFIG_LOCATION": str(config_dir)})
    seen: list[psutil.Process] = []
    deadline = time.monotonic() + START_DEADLINE_S
    while up.proc.poll() is None and time.monotonic() < deadline:
        seen.extend(p for p in up.descendants() if p.pid not in {s.pid for s in seen})
        time.sleep(0.05)
    code = up.proc.wait(STOP_DEADLINE_S)
    stderr = up.proc.stderr.read()
    assert code == 1
    assert "executor (executor_service) exited with code 2 while starting" in stderr
    assert "unknown setting 'kafka_dispatch_partitons'" in stderr
    assert seen, "the platform failed before starting anything"
    assert still_running(seen) == []


def test_up_uses_external_postgres_and_kafka_when_configured(
    tmp_path, empty_database_url, kafka_bootstrap_servers
):
    ports = free_ports()
    up = Up(
        tmp_path,
        ports,
        {"DATABASE_URL": empty_database_url, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers},
    )
    try:
        up.wait_for_line("Press Ctrl-C to stop.", START_DEADLINE_S)
        output = "\n".join(up.seen)
        for service in SERVICES:
            answer = httpx.get(f"http://127.0.0.1:{ports[service]}/readyz", timeout=5)
            assert answer.status_code == 200, (service, answer.text)
        started = up.descendants()
        modules = sorted(p.cmdline()[-1] for p in started if "-m" in p.cmdline())
    finally:
        code = up.stop(signal.SIGINT)
    assert code == 0
    assert f"{kafka_bootstrap_servers}  (external)" in output
    assert "(external)" in output.split("PostgreSQL", 1)[1].splitlines()[0]
    # Nothing embedded was started: only the five services ran under schedctl.
    assert not (tmp_path / "postgres").exists()
    assert modules == sorted(SERVICES)
    assert len(started) == len(SERVICES)
    assert still_running(started) == []
