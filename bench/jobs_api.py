"""The jobs API under load: creates per second (single and batch), and read latency with a
million jobs stored.

Runs an embedded PostgreSQL and one real `python -m job_service` process; this process is
the client (32 concurrent connections for single creates). Tokens are minted with a key whose
JWKS a small loopback server publishes, as the auth service would.

Run: .venv/bin/python -m bench.jobs_api [--million 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import asyncpg
import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from libs.store import migrate
from schedctl import embedded

CONCURRENCY = 32
SINGLE_CREATES = 4_000
BATCHES = 20
BATCH_SIZE = 1_000
READS = 300
ISSUER, AUDIENCE, KID = "https://bench.auth", "scheduler", "bench-key"


def job_body(i: int) -> dict:
    return {
        "name": f"bench-{i}",
        "type": "log",
        "payload": {"message": f"job {i}"},
        "schedule": {"kind": "cron", "expression": "*/5 * * * *", "timezone": "Europe/London"},
        "labels": {"team": "bench"},
    }


def serve_jwks(key: ec.EllipticCurvePrivateKey) -> tuple[ThreadingHTTPServer, str]:
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    document = json.dumps({"keys": [{**jwk, "kid": KID, "alg": "ES256", "use": "sig"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", embedded.free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/jwks.json"


def token(key: ec.EllipticCurvePrivateKey, owner: str) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": owner, "iat": now, "nbf": now,
        "exp": now + 3600, "jti": uuid.uuid4().hex, "principal": "user",
        "scope": "jobs:read jobs:run jobs:write",
    }  # fmt: skip
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": KID, "typ": "at+jwt"})


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


async def single_creates(client: httpx.AsyncClient) -> float:
    counter = iter(range(SINGLE_CREATES))

    async def worker() -> None:
        for i in counter:
            response = await client.post("/v1/jobs", json=job_body(i))
            response.raise_for_status()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return SINGLE_CREATES / (time.perf_counter() - started)


async def batch_creates(client: httpx.AsyncClient) -> float:
    started = time.perf_counter()
    for b in range(BATCHES):
        jobs = [job_body(b * BATCH_SIZE + i) for i in range(BATCH_SIZE)]
        response = await client.post("/v1/jobs:batch", json={"jobs": jobs}, timeout=120)
        response.raise_for_status()
    return BATCHES * BATCH_SIZE / (time.perf_counter() - started)


async def seed(database_url: str, owner: str, count: int) -> None:
    """`count` jobs of one owner in one statement, shaped as the API stores them."""
    conn = await asyncpg.connect(database_url)
    try:
        template = await conn.fetchrow(
            "SELECT * FROM jobs WHERE owner_id = $1 LIMIT 1", uuid.UUID(owner)
        )
        generated = ("id", "name", "next_run_at", "created_at", "updated_at")
        columns = [c for c in template.keys() if c not in generated]
        listed = ", ".join(columns)
        await conn.execute(
            f"INSERT INTO jobs ({listed}, name, next_run_at, created_at) "  # noqa: S608
            f"SELECT {listed}, 'seed-' || g, now() + g * interval '1 second', "
            f"now() - g * interval '1 millisecond' "
            f"FROM (SELECT * FROM jobs WHERE id = $1) t, generate_series(1, $2) g",
            template["id"],
            count,
        )
        await conn.execute("ANALYZE jobs")
    finally:
        await conn.close()


async def latencies(client: httpx.AsyncClient, path: str) -> list[float]:
    timings = []
    for _ in range(READS):
        started = time.perf_counter()
        response = await client.get(path)
        response.raise_for_status()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def report(name: str, timings: list[float]) -> None:
    print(
        f"{name}: median {statistics.median(timings):.1f} ms, "
        f"p99 {percentile(timings, 0.99):.1f} ms over {len(timings)} requests"
    )


async def run(million: int) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwks_server, jwks_url = serve_jwks(key)
    root = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    pg = embedded.EmbeddedPostgres(
        root / "pg", embedded.free_port(), log_path=root / "pg.log", for_tests=False
    )
    pg.start()
    database_url = pg.url
    port = embedded.free_port()
    service = None
    try:
        await asyncio.to_thread(migrate.upgrade, database_url)
        env = {
            **os.environ, "DATABASE_URL": database_url, "HTTP_PORT": str(port),
            "AUTH_ISSUER": ISSUER, "AUTH_AUDIENCE": AUDIENCE, "AUTH_JWKS_URL": jwks_url,
            "LOG_LEVEL": "WARNING", "DATABASE_POOL_SIZE": "20",
        }  # fmt: skip
        log = (root / "job_service.log").open("ab")
        service = embedded.spawn([sys.executable, "-m", "job_service"], log=log, env=env)
        base = f"http://127.0.0.1:{port}"
        embedded.wait_until(lambda: _ready(base), 60, "job service", service)
        owner = str(uuid.uuid4())
        headers = {"authorization": f"Bearer {token(key, owner)}"}
        limits = httpx.Limits(max_connections=CONCURRENCY)
        async with httpx.AsyncClient(
            base_url=base, headers=headers, limits=limits, timeout=30
        ) as client:
            print(f"cores: {os.cpu_count()}")
            rate = await single_creates(client)
            print(f"POST /v1/jobs, {CONCURRENCY} clients: {rate:,.0f} jobs/s ({SINGLE_CREATES})")
            rate = await batch_creates(client)
            print(f"POST /v1/jobs:batch ({BATCH_SIZE}/request): {rate:,.0f} jobs/s")
            await seed(database_url, owner, million)
            print(f"seeded {million:,} more jobs")
            first = (await client.get("/v1/jobs", params={"limit": 50})).json()
            job_id = first["items"][0]["id"]
            report("GET /v1/jobs?limit=50", await latencies(client, "/v1/jobs?limit=50"))
            report(
                "GET /v1/jobs?limit=50&sort=nextRunAt",
                await latencies(client, "/v1/jobs?limit=50&sort=nextRunAt"),
            )
            cursor = first.get("nextCursor")
            report(
                "GET /v1/jobs (second page, by cursor)",
                await latencies(client, f"/v1/jobs?limit=50&cursor={cursor}"),
            )
            report("GET /v1/jobs/{id}", await latencies(client, f"/v1/jobs/{job_id}"))
    finally:
        if service is not None:
            embedded.stop_process(service, signal.SIGTERM, 10)
        pg.stop()
        jwks_server.shutdown()
        shutil.rmtree(root, ignore_errors=True)


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--million", type=int, default=1_000_000, help="jobs to seed for reads")
    asyncio.run(run(parser.parse_args().million))


if __name__ == "__main__":
    main()
