"""A `schedctl up` process driven as a user drives it, for the system tests."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from schedctl import embedded

START_DEADLINE_S = 90
STOP_DEADLINE_S = 60
SERVICES = ("user_service", "auth_service", "job_service", "scheduler_service", "executor_service",
            "console_service")  # fmt: skip
PORT_SETTINGS = {
    "postgres": "EMBEDDED_POSTGRES_PORT",
    "broker": "EMBEDDED_BROKER_PORT",
    **{service: f"{service.upper()}_HTTP_PORT" for service in SERVICES},
}
SETTINGS_VARIABLES = ("CONFIG_LOCATION", "SPRING_CONFIG_LOCATION", "DATABASE_URL",
                      "KAFKA_BOOTSTRAP_SERVERS", "HTTP_PORT", "HTTP_HOST")  # fmt: skip


POLL_INTERVAL_S = 0.2


def eventually(check: Callable[[], Any], deadline_s: float) -> Any:
    """The first truthy answer of `check`, asked again until the deadline (then the test
    fails, naming `check`)."""
    deadline = time.monotonic() + deadline_s
    while True:
        answer = check()
        if answer:
            return answer
        if time.monotonic() > deadline:
            pytest.fail(f"not within {deadline_s} s: {check}")
        time.sleep(POLL_INTERVAL_S)


class Up:
    """A `schedctl up` process whose output is read line by line as it comes."""

    def __init__(
        self, data_dir: Path, ports: dict[str, int], extra_env: dict[str, str] | None = None
    ):
        env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
        env.update({f"{PORT_SETTINGS[name]}": str(port) for name, port in ports.items()})
        env["DATA_DIR"] = str(data_dir)
        env.update(extra_env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "schedctl", "up"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for_line(self, text: str, deadline_s: float) -> None:
        deadline = time.monotonic() + deadline_s
        while not any(text in line for line in self.seen):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self.proc.poll() is not None and self.lines.empty()):
                stderr = self.proc.stderr.read() if self.proc.poll() is not None else ""
                pytest.fail(f"no line {text!r}; output: {self.seen}; stderr: {stderr}")
            try:
                self.seen.append(self.lines.get(timeout=min(remaining, 0.5)))
            except queue.Empty:
                continue

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def stop(self, sig: signal.Signals) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(STOP_DEADLINE_S)


def still_running(processes: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            continue
    return alive


def free_ports() -> dict[str, int]:
    ports: dict[str, int] = {}
    for name in ("postgres", "broker", *SERVICES):
        port = embedded.free_port()
        while port in ports.values():
            port = embedded.free_port()
        ports[name] = port
    return ports
