"""Node heartbeats: every scheduler and executor process keeps a row in `nodes` fresh, so the
nodes list (`GET /v1/nodes`) shows who is alive; a clean shutdown deletes the row, and the
survivors of a service purge the rows of its nodes killed without one. The queries take the
caller's session and commit nothing."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

DISTRIBUTION = "scheduling-platform"
REMOVE_TIMEOUT_S = 1.0  # a node's row removal at shutdown, whatever the database does


def package_version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True, slots=True)
class NodeInfo:
    node_id: str
    service: str
    hostname: str
    pid: int
    version: str
    started_at: datetime
    metadata: dict[str, Any]


_HEARTBEAT = text("""
INSERT INTO nodes (node_id, service, hostname, pid, version, started_at, last_heartbeat_at,
                   metadata)
VALUES (:node_id, :service, :hostname, :pid, :version, :started_at, now(),
        CAST(:metadata AS jsonb))
ON CONFLICT (node_id) DO UPDATE
SET service = excluded.service, hostname = excluded.hostname, pid = excluded.pid,
    version = excluded.version, started_at = excluded.started_at,
    last_heartbeat_at = excluded.last_heartbeat_at, metadata = excluded.metadata
""")


async def write_heartbeat(session: AsyncSession, node: NodeInfo) -> None:
    """Insert this node's row, or refresh its `last_heartbeat_at` to the database's now."""
    await session.execute(
        _HEARTBEAT,
        {
            "node_id": node.node_id,
            "service": node.service,
            "hostname": node.hostname,
            "pid": node.pid,
            "version": node.version,
            "started_at": node.started_at,
            "metadata": json.dumps(node.metadata),
        },
    )


_DELETE_NODE = text("DELETE FROM nodes WHERE node_id = :node_id")


async def delete_node(session: AsyncSession, node_id: str) -> bool:
    """Remove this node's row (clean shutdown); False when there was none."""
    return (await session.execute(_DELETE_NODE, {"node_id": node_id})).rowcount > 0


_PURGE_NODES = text("""
DELETE FROM nodes
WHERE service = :service AND last_heartbeat_at < now() - make_interval(secs => :older_than_s)
RETURNING node_id
""")


async def purge_stale_nodes(
    session: AsyncSession, *, service: str, older_than_s: float
) -> list[str]:
    """Remove rows of `service`'s nodes silent for longer than `older_than_s` (killed nodes)."""
    rows = await session.execute(_PURGE_NODES, {"service": service, "older_than_s": older_than_s})
    return [row.node_id for row in rows]


def this_node(service: str, node_id: str, metadata: dict[str, Any]) -> NodeInfo:
    """This process as a node of `service`, started now."""
    return NodeInfo(
        node_id=node_id,
        service=service,
        hostname=socket.gethostname(),
        pid=os.getpid(),
        version=package_version(),
        started_at=datetime.now(UTC),
        metadata=metadata,
    )
