"""Service processes of the crash tests: one `python -m <service>` started with its settings in
the environment, its JSON log in a file, and waits bounded by a deadline. Not a test module."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from schedctl import embedded

START_DEADLINE_S = 30
# Settings files of the developer's shell must not leak into the test's processes.
ENV_DROPPED = ("CONFIG_LOCATION", "SPRING_CONFIG_LOCATION")
READY_POLL_S = 0.1  # between two readiness checks, within START_DEADLINE_S


async def wait_for(condition: Callable[[], Awaitable[bool]], deadline_s: float, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {deadline_s} s: {what}")
        await asyncio.sleep(0.05)


@dataclass
class Service:
    """A service process started by the test, its log (JSON lines) in a file."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def events(self, event: str) -> list[dict]:
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and entry.get("event") == event:
                    found.append(entry)
        return found

    def stop(self) -> None:
        """Kill the process if it still runs (cleanup)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def start_service(package: str, name: str, log_dir: Path, settings: dict[str, str]) -> Service:
    """Start `python -m package` with `settings` as its environment and wait until it is ready."""
    port = embedded.free_port()
    env = {k: v for k, v in os.environ.items() if k not in ENV_DROPPED}
    env.update(settings, HTTP_PORT=str(port), NODE_ID=name, LOG_FORMAT="json")
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", package], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    service = Service(name, proc, log_path)
    deadline = time.monotonic() + START_DEADLINE_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{name} exited with {proc.returncode} while starting: {tail(service)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return service
        if time.monotonic() > deadline:
            service.stop()
            pytest.fail(f"{name} was not ready in time: {tail(service)}")
        time.sleep(READY_POLL_S)


def tail(service: Service, lines: int = 20) -> str:
    return "\n".join(service.log_path.read_text(errors="replace").splitlines()[-lines:])
