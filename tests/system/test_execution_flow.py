"""Jobs run on time through the platform `schedctl up` runs, as a user sees it through the API.

One platform; one user creates, through the job service: an `http` job (the target verifies its
Standard Webhooks signature with the secret the user reads from the API), a `log` job, a `kafka`
job (read back from the platform's broker), recurring jobs of each kind that can be waited for
(`fixed_rate`, Quartz `cron` with seconds, `fixed_delay`), and an `http` job whose target fails:
it ends FAILED with a dead letter, which, replayed once the target answers, completes the job.
Runs a person asks for: a FAILED job fixed with PATCH and run now completes; a PAUSED job run
now runs once and is PAUSED again, its regular occurrences not running; resumed during such a
run, it carries on with its schedule. Calendar schedules (days, weeks, months) cannot be waited
for here; `libs.scheduling.schedule`'s tests cover them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from platform_process import START_DEADLINE_S, Up, free_ports, still_running
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from libs.security import webhooks

PASSWORD = "correct horse battery staple"
RUN_DEADLINE_S = 30  # for a job to reach the state a step waits for
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
SECOND = timedelta(seconds=1)


class Target:
    """An HTTP endpoint on loopback recording what each path receives; `/hook` and `/fixed`
    answer 200, `/flaky` answers `flaky_status`, `/slow` answers 200 once `release` is set.
    Any other path answers 404."""

    PATHS = ("/hook", "/flaky", "/fixed", "/slow")

    def __init__(self) -> None:
        self.received: dict[str, list[tuple[Headers, bytes]]] = {p: [] for p in self.PATHS}
        self.flaky_status = 500
        self.release = asyncio.Event()

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            self.received[request.url.path].append((request.headers, await request.body()))
            if request.url.path == "/slow":
                await self.release.wait()
            status = self.flaky_status if request.url.path == "/flaky" else 200
            return Response("ok" if status == 200 else "failing on purpose", status)

        return Starlette(routes=[Route(path, hook, methods=["POST"]) for path in self.PATHS])


class User:
    """A registered user calling the job service with their own token."""

    def __init__(self, ports: dict[str, int], email: str):
        self.ports = ports
        self.email = email
        self.jobs = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{ports['job_service']}", timeout=10
        )

    async def login(self) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            body = {"email": self.email, "password": PASSWORD, "displayName": "ada"}
            registered = await client.post(
                f"http://127.0.0.1:{self.ports['user_service']}/v1/users", json=body
            )
            assert registered.status_code == 202, registered.text
            answer = await client.post(
                f"http://127.0.0.1:{self.ports['auth_service']}/oauth/token",
                data={"grant_type": "password", "username": self.email, "password": PASSWORD},
            )
        assert answer.status_code == 200, answer.text
        self.jobs.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    async def call(self, method: str, path: str, expected: int = 200, **kwargs: Any) -> Any:
        answer = await self.jobs.request(method, path, **kwargs)
        assert answer.status_code == expected, (method, path, answer.text)
        return answer.json()

    async def create(self, name: str, type_: str, payload: dict, schedule: dict, **more: Any):
        body = {"name": name, "type": type_, "payload": payload, "schedule": schedule, **more}
        return await self.call("POST", "/v1/jobs", 201, json=body)

    async def finished(self, job: dict) -> dict:
        """The job once it has reached a terminal state."""
        return await self.until(job, lambda j: j["status"] in TERMINAL, "finished")

    async def until(self, job: dict, condition: Callable[[dict], bool], what: str) -> dict:
        """The job once `condition` holds for it."""
        deadline = time.monotonic() + RUN_DEADLINE_S
        while True:
            current = await self.call("GET", f"/v1/jobs/{job['id']}")
            if condition(current):
                return current
            if time.monotonic() > deadline:
                pytest.fail(f"{job['name']} not {what} after {RUN_DEADLINE_S} s: {current}")
            await asyncio.sleep(0.1)

    async def act(self, job: dict, action: str) -> dict:
        return await self.call("POST", f"/v1/jobs/{job['id']}:{action}")

    async def executions(self, job: dict) -> list[dict]:
        """Every execution of the job, oldest first."""
        page = await self.call("GET", f"/v1/jobs/{job['id']}/executions", params={"limit": 100})
        assert page["nextCursor"] is None
        return sorted(page["items"], key=lambda e: (instant(e["scheduledFor"]), e["attempt"]))


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def logged_events(log_path: Path, event: str) -> list[dict]:
    found = []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == event:
            found.append(entry)
    return found


async def create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()


async def read_one(bootstrap: str, topic: str) -> Any:
    """The first message of `topic` (the kafka job's)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        async with asyncio.timeout(RUN_DEADLINE_S):
            return await consumer.getone()
    finally:
        await consumer.stop()


# --- what each job must have done ----------------------------------------------------------------


async def check_http(user: User, job: dict, target: Target, secret: str) -> None:
    """Delivered once, signed with the user's secret, under the occurrence's key."""
    done = await user.finished(job)
    assert (done["status"], done["runCount"]) == ("COMPLETED", 1)
    [(headers, body)] = target.received["/hook"]
    assert body == b'{"report":1}'
    webhooks.verify(secret, dict(headers), body, now=int(time.time()))
    assert headers["idempotency-key"] == headers[webhooks.ID_HEADER]
    [execution] = await user.executions(job)
    assert execution["status"] == "SUCCEEDED"


async def check_log(user: User, job: dict, executor_log: Path) -> None:
    """Written to the executor's log."""
    done = await user.finished(job)
    assert (done["status"], done["runCount"]) == ("COMPLETED", 1)
    lines = logged_events(executor_log, "job_log")
    assert [e["message"] for e in lines if e["job_id"] == job["id"]] == ["smoke test ran"]


async def check_kafka(user: User, job: dict, bootstrap: str) -> None:
    """On the broker, keyed as asked, with the occurrence's idempotency key."""
    done = await user.finished(job)
    assert (done["status"], done["runCount"]) == ("COMPLETED", 1)
    record = await read_one(bootstrap, job["payload"]["topic"])
    assert json.loads(record.value) == {"invoice": 1001}
    assert record.key == b"customer-42"
    assert "idempotency-key" in dict(record.headers)


async def check_fixed_rate(user: User, job: dict) -> None:
    """Three runs, a second apart from the anchor (not from the previous run's end)."""
    done = await user.finished(job)
    assert (done["status"], done["runCount"]) == ("COMPLETED", 3)
    runs = await user.executions(job)
    assert [e["status"] for e in runs] == ["SUCCEEDED"] * 3
    times = [instant(e["scheduledFor"]) for e in runs]
    assert times[0] == instant(job["nextRunAt"])
    assert [b - a for a, b in itertools.pairwise(times)] == [SECOND, SECOND]


async def check_cron(user: User, job: dict) -> None:
    """A run at every whole second from the first one until endAt, and no more."""
    done = await user.finished(job)
    first, end_at = instant(job["nextRunAt"]), instant(job["schedule"]["endAt"])
    expected = [first]
    while expected[-1] + SECOND <= end_at:
        expected.append(expected[-1] + SECOND)
    assert len(expected) >= 3 and first.microsecond == 0
    assert (done["status"], done["runCount"]) == ("COMPLETED", len(expected))
    runs = await user.executions(job)
    assert [e["status"] for e in runs] == ["SUCCEEDED"] * len(expected)
    assert [instant(e["scheduledFor"]) for e in runs] == expected


async def check_fixed_delay(user: User, job: dict) -> None:
    """Two runs, the second one a second after the first one finished."""
    done = await user.finished(job)
    assert (done["status"], done["runCount"]) == ("COMPLETED", 2)
    runs = await user.executions(job)
    assert [e["status"] for e in runs] == ["SUCCEEDED"] * 2
    assert instant(runs[1]["scheduledFor"]) >= instant(runs[0]["finishedAt"]) + SECOND


async def check_failed_then_replayed(user: User, job: dict, target: Target) -> None:
    """Retried once, then FAILED with a dead letter; replayed once the target answers 200, the
    job completes."""
    done = await user.finished(job)
    assert (done["status"], done["runCount"]) == ("FAILED", 1)
    runs = await user.executions(job)
    assert [(e["attempt"], e["status"], e["errorKind"]) for e in runs] == [
        (1, "FAILED", "http_5xx"),
        (2, "FAILED", "http_5xx"),
    ]
    assert runs[0]["scheduledFor"] == runs[1]["scheduledFor"]
    keys = {headers["idempotency-key"] for headers, _ in target.received["/flaky"]}
    assert len(target.received["/flaky"]) == 2 and len(keys) == 1
    letters = await user.call("GET", "/v1/dead-letters", params={"jobId": job["id"]})
    [letter] = letters["items"]
    assert (letter["attempts"], letter["executionId"], letter["replayedAt"]) == (
        2,
        runs[1]["id"],
        None,
    )

    target.flaky_status = 200
    replay = await user.call("POST", f"/v1/dead-letters/{letter['id']}:replay")
    assert replay["job"]["status"] == "SCHEDULED"
    assert replay["deadLetter"]["replayedAt"] is not None
    done = await user.finished(job)
    assert done["status"] == "COMPLETED"
    runs = await user.executions(job)
    assert len(runs) == 3 and (runs[-1]["attempt"], runs[-1]["status"]) == (1, "SUCCEEDED")
    assert len(target.received["/flaky"]) == 3


async def check_fixed_then_run(user: User, job: dict, target: Target, base_url: str) -> None:
    """Refused by its target for good (404): FAILED. Pointed at a working URL it stays FAILED;
    run now, it completes, attempts counted from 1."""
    failed = await user.finished(job)
    assert failed["status"] == "FAILED"
    fixed = await user.call(
        "PATCH",
        f"/v1/jobs/{job['id']}",
        json={"payload": {"url": f"{base_url}/fixed"}},
        headers={"If-Match": f'"{failed["version"]}"'},
    )
    assert (fixed["status"], fixed["nextRunAt"]) == ("FAILED", None)
    assert (await user.act(job, "run"))["status"] == "SCHEDULED"
    done = await user.finished(job)
    assert done["status"] == "COMPLETED"
    runs = await user.executions(job)
    assert [(e["attempt"], e["status"]) for e in runs] == [(1, "FAILED"), (1, "SUCCEEDED")]
    assert len(target.received["/fixed"]) == 1


async def check_paused_run(user: User, job: dict, base_url: str) -> None:
    """Paused before its first occurrence and run now: it runs once and is PAUSED again; its
    next regular occurrence does not run (a job due a second later does)."""
    ran = await user.act(job, "run")
    assert (ran["status"], ran["pauseAfterRun"]) == ("SCHEDULED", True)
    again = await user.until(
        job, lambda j: j["status"] == "PAUSED" and j["runCount"] == 1, "paused after its run"
    )
    assert again["pauseAfterRun"] is False
    later = instant(again["nextRunAt"]) + SECOND
    witness = await user.create(
        "witness", "http", {"url": f"{base_url}/hook"}, {"kind": "once", "at": later.isoformat()}
    )
    assert (await user.finished(witness))["status"] == "COMPLETED"
    still = await user.call("GET", f"/v1/jobs/{job['id']}")
    assert (still["status"], still["runCount"]) == ("PAUSED", 1)
    assert [e["status"] for e in await user.executions(job)] == ["SUCCEEDED"]


async def check_resumed_during_run(user: User, job: dict, target: Target) -> None:
    """Paused, run now, and resumed while that run is under way: afterwards it is SCHEDULED
    at its next regular occurrence."""
    await user.act(job, "run")
    deadline = time.monotonic() + RUN_DEADLINE_S
    while not target.received["/slow"]:
        assert time.monotonic() < deadline, "the run never reached its target"
        await asyncio.sleep(0.05)
    resumed = await user.act(job, "resume")
    assert (resumed["status"], resumed["pauseAfterRun"]) == ("RUNNING", False)
    target.release.set()
    after = await user.until(job, lambda j: j["runCount"] == 1, "done with its run")
    assert (after["status"], after["nextRunAt"]) == ("SCHEDULED", job["nextRunAt"])


# --- the test ------------------------------------------------------------------------------------


async def test_jobs_of_every_kind_and_type_run_on_time(tmp_path, serve_app):
    ports = free_ports()
    bootstrap = f"127.0.0.1:{ports['broker']}"
    target = Target()
    user = User(ports, "ada@example.com")
    up = Up(tmp_path, ports)
    started = []
    try:
        await asyncio.to_thread(up.wait_for_line, "Press Ctrl-C to stop.", START_DEADLINE_S)
        started = up.descendants()
        await user.login()
        secret = (await user.call("GET", "/v1/webhook-secret"))["secret"]
        topic = f"reports-{uuid.uuid4().hex[:8]}"
        await create_topic(bootstrap, topic)

        async with serve_app(target.app()) as base_url:
            once = {"kind": "once"}  # due now
            preview = await user.call(
                "POST", "/v1/schedules:preview", json={"schedule": once, "count": 1}
            )
            now = instant(preview["fireTimes"][0])  # a `once` without `at`: the database's now
            http_job = await user.create(
                "webhook", "http", {"url": f"{base_url}/hook", "body": {"report": 1}}, once
            )
            log_job = await user.create("smoke", "log", {"message": "smoke test ran"}, once)
            kafka_job = await user.create(
                "publish", "kafka",
                {"topic": topic, "key": "customer-42", "value": {"invoice": 1001}}, once,
            )  # fmt: skip
            fixed_rate = await user.create(
                "every second", "log", {"message": "rate"},
                {"kind": "fixed_rate", "intervalSeconds": 1, "maxRuns": 3},
            )  # fmt: skip
            cron = await user.create(
                "cron with seconds", "log", {"message": "cron"},
                {"kind": "cron", "expression": "*/1 * * * * ?",
                 "endAt": (now + timedelta(seconds=3.5)).isoformat()},
            )  # fmt: skip
            fixed_delay = await user.create(
                "a second after", "log", {"message": "delay"},
                {"kind": "fixed_delay", "delaySeconds": 1, "maxRuns": 2},
            )  # fmt: skip
            failing = await user.create(
                "failing webhook", "http", {"url": f"{base_url}/flaky"}, once,
                retryPolicy={"maxAttempts": 2, "initialBackoffSeconds": 0.1},
            )  # fmt: skip
            broken = await user.create("broken webhook", "http", {"url": f"{base_url}/gone"}, once)
            # Paused before their first occurrence, then run now by the checks below.
            paused = await user.create(
                "paused", "log", {"message": "paused"},
                {"kind": "fixed_rate", "intervalSeconds": 2,
                 "startAt": (now + timedelta(seconds=10)).isoformat()},
            )  # fmt: skip
            held = await user.create(
                "held", "http", {"url": f"{base_url}/slow"},
                {"kind": "fixed_rate", "intervalSeconds": 3600,
                 "startAt": (now + timedelta(hours=1)).isoformat()},
            )  # fmt: skip
            for job in (paused, held):
                assert (await user.act(job, "pause"))["status"] == "PAUSED"

            await check_http(user, http_job, target, secret)
            await check_log(user, log_job, tmp_path / "logs" / "executor_service.log")
            await check_kafka(user, kafka_job, bootstrap)
            await check_fixed_rate(user, fixed_rate)
            await check_cron(user, cron)
            await check_fixed_delay(user, fixed_delay)
            await check_failed_then_replayed(user, failing, target)
            await check_fixed_then_run(user, broken, target, base_url)
            await check_paused_run(user, paused, base_url)
            await check_resumed_during_run(user, held, target)
    finally:
        await user.jobs.aclose()
        code = await asyncio.to_thread(up.stop, signal.SIGINT)
    assert code == 0
    assert still_running(started) == []
