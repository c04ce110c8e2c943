"""Real parts for every test: a PostgreSQL server and a Kafka-protocol broker.

By default both are embedded (started once per test session, on free loopback ports). Set
`TEST_DATABASE_URL` (a server where the URL's role may create databases) or
`TEST_KAFKA_BOOTSTRAP_SERVERS` to use external ones instead.

`token_issuer` mints access tokens whose keys it serves as a JWKS on loopback.

Each test that asks for `database_url` gets its own database, cloned from a template migrated
once per session; `empty_database_url` is a database with no schema at all.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import hypothesis
import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from libs.store import migrate
from schedctl import embedded

SERVER_START_DEADLINE_S = 10


def _database_url(server_url: str, database: str) -> str:
    return make_url(server_url).set(database=database).render_as_string(hide_password=False)


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# Hypothesis's per-example deadline fails tests on a busy shared machine for no fault of theirs.
hypothesis.settings.register_profile("scheduler", deadline=None)
hypothesis.settings.load_profile("scheduler")


@pytest.fixture(scope="session")
def servers_dir() -> Iterator[Path]:
    """Data and logs of the embedded servers. Not under pytest's tmp_path: pytest deletes old
    numbered folders there, which would pull a data folder from under a concurrent run."""
    path = Path(tempfile.mkdtemp(prefix="scheduler-tests-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server_url(servers_dir: Path) -> Iterator[str]:
    """The URL of a PostgreSQL server's maintenance database."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield external
        return
    server = embedded.EmbeddedPostgres(
        servers_dir / "postgres",
        embedded.free_port(),
        log_path=servers_dir / "postgres.log",
        for_tests=True,
    )
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap_servers(servers_dir: Path) -> Iterator[str]:
    external = os.environ.get("TEST_KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    broker = embedded.EmbeddedBroker(embedded.free_port(), log_path=servers_dir / "broker.log")
    broker.start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


async def _admin(server_url: str, sql: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(server_url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _create_database(server_url: str, template: str | None = None) -> str:
    name = f"t_{uuid.uuid4().hex[:16]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    await _admin(server_url, f'CREATE DATABASE "{name}"{clause}')
    return name


async def _drop_database(server_url: str, name: str) -> None:
    await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
async def template_database(postgres_server_url: str) -> AsyncIterator[str]:
    """A database migrated to head once per session, cloned for each test."""
    name = await _create_database(postgres_server_url)
    await asyncio.to_thread(migrate.upgrade, _database_url(postgres_server_url, name))
    try:
        yield name
    finally:
        await _drop_database(postgres_server_url, name)


@pytest.fixture
async def database_url(postgres_server_url: str, template_database: str) -> AsyncIterator[str]:
    """A fresh database at the head migration, for this test alone."""
    name = await _create_database(postgres_server_url, template=template_database)
    try:
        yield _database_url(postgres_server_url, name)
    finally:
        await _drop_database(postgres_server_url, name)


@pytest.fixture
async def empty_database_url(postgres_server_url: str) -> AsyncIterator[str]:
    """A fresh database with no schema, for this test alone."""
    name = await _create_database(postgres_server_url)
    try:
        yield _database_url(postgres_server_url, name)
    finally:
        await _drop_database(postgres_server_url, name)


@pytest.fixture
def unique_name() -> str:
    """A name no other test uses (topics, consumer groups)."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


class TokenIssuer:
    """Mints access tokens as the auth service does, with keys it serves as a JWKS over real
    HTTP on loopback, so services under test verify them exactly as in production."""

    issuer = "https://auth.test"
    audience = "scheduler"
    algorithm = "ES256"

    def __init__(self) -> None:
        self.url = ""
        self.keys: dict[str, ec.EllipticCurvePrivateKey] = {}
        self.kid = self.add_key()

    def add_key(self) -> str:
        """A new signing key, published in the JWKS and used by `mint` from now on."""
        kid = f"test-{uuid.uuid4().hex[:8]}"
        self.keys[kid] = ec.generate_private_key(ec.SECP256R1())
        self.kid = kid
        return kid

    @property
    def jwks(self) -> dict[str, Any]:
        published = []
        for kid, key in self.keys.items():
            jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
            published.append({**jwk, "kid": kid, "alg": self.algorithm, "use": "sig"})
        return {"keys": published}

    def mint(
        self,
        subject: str | None = None,
        scopes: Iterable[str] = (),
        *,
        principal: str = "user",
        ttl_s: int = 900,
        headers: dict[str, Any] | None = None,
        drop: Iterable[str] = (),
        **claims: Any,
    ) -> str:
        """A signed access token; `claims` override or add claims, `drop` removes some."""
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject or str(uuid.uuid4()),
            "iat": now,
            "nbf": now,
            "exp": now + ttl_s,
            "jti": uuid.uuid4().hex,
            "scope": " ".join(sorted(scopes)),
            "principal": principal,
            **claims,
        }
        for name in drop:
            body.pop(name, None)
        header = {"kid": self.kid, "typ": "at+jwt", **(headers or {})}
        return jwt.encode(body, self.keys[self.kid], algorithm=self.algorithm, headers=header)

    def settings(self) -> dict[str, Any]:
        """Settings that make a service trust this issuer."""
        return {
            "auth_issuer": self.issuer,
            "auth_audience": self.audience,
            "auth_algorithm": self.algorithm,
            "auth_jwks_url": self.url,
            "auth_jwks_refresh_min_interval_s": 0.0,
        }


@asynccontextmanager
async def _serve(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app (lifespan included) with uvicorn on a free loopback port; yields its
    base URL and stops it when the block ends."""
    port = embedded.free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    serving = asyncio.create_task(server.serve())
    async with asyncio.timeout(SERVER_START_DEADLINE_S):
        while not server.started:
            if serving.done():
                serving.result()  # raises what stopped the server from starting
            await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


@pytest.fixture
def serve_app() -> Any:
    """`async with serve_app(app) as base_url:` runs `app` on a real loopback HTTP server."""
    return _serve


@pytest.fixture(scope="session")
async def token_issuer() -> AsyncIterator[TokenIssuer]:
    issuer = TokenIssuer()

    async def jwks(_request: Request) -> JSONResponse:
        return JSONResponse(issuer.jwks)

    async with _serve(Starlette(routes=[Route("/.well-known/jwks.json", jwks)])) as base_url:
        issuer.url = f"{base_url}/.well-known/jwks.json"
        yield issuer
