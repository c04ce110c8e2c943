"""GET /v1/nodes: the scheduler and executor processes, up or down by their heartbeats."""

from __future__ import annotations

import pytest
from job_service_support import running

from libs.security import scopes


@pytest.fixture
async def jobs(database_url, token_issuer):
    async with running(database_url, token_issuer) as service:
        yield service


async def add_node(jobs, node_id: str, service: str, silent_s: int) -> None:
    await jobs.sql(
        "INSERT INTO nodes (node_id, service, hostname, pid, version, started_at, "
        "last_heartbeat_at) VALUES (:node_id, :service, 'host', 42, '0.1.0', "
        "now() - interval '1 hour', now() - make_interval(secs => :silent_s))",
        node_id=node_id,
        service=service,
        silent_s=silent_s,
    )


async def test_nodes_are_listed_up_or_down_by_their_last_heartbeat(jobs):
    await add_node(jobs, "sched-a", "scheduler_service", silent_s=2)
    await add_node(jobs, "exec-a", "executor_service", silent_s=300)

    response = await jobs.get("/v1/nodes", headers=jobs.bearer(None, scopes.USERS_ADMIN))

    assert response.status_code == 200, response.text
    listed = {node["nodeId"]: node for node in response.json()["items"]}
    assert set(listed) == {"sched-a", "exec-a"}
    assert listed["sched-a"]["up"] is True
    assert listed["exec-a"]["up"] is False
    assert listed["sched-a"]["service"] == "scheduler_service"
    assert listed["sched-a"]["lastHeartbeatAt"].endswith(("Z", "+00:00"))


async def test_nodes_are_for_admins_only(jobs):
    response = await jobs.get("/v1/nodes")  # every job scope, but not users:admin

    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert (await jobs.client.get("/v1/nodes")).status_code == 401
