"""Resources a service builds in its lifespan, each with the readiness check it contributes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from functools import partial
from typing import Any, Protocol

import httpx
from fastapi import FastAPI

from libs.infra import db, kafka, web
from libs.infra.config import ApiSettings, KafkaSettings, ServiceSettings
from libs.infra.web import Check
from libs.security import revocation, tokens

JWKS_TIMEOUT_S = 5.0

Resource = Callable[[FastAPI], AbstractAsyncContextManager[dict[str, Check]]]


@asynccontextmanager
async def database(
    app: FastAPI, settings: ServiceSettings, *, pre_ping: bool = True
) -> AsyncIterator[dict[str, Check]]:
    """An engine and session factory on `app.state`; disposed when the block ends. `pre_ping`:
    see `db.create_engine`."""
    engine = db.create_engine(
        settings.database_url.get_secret_value(),
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        statement_timeout_ms=settings.database_statement_timeout_ms,
        application_name=f"{settings.service_name}:{settings.node_id}"[:63],
        pre_ping=pre_ping,
    )
    app.state.engine = engine
    app.state.sessions = db.session_factory(engine)
    try:
        yield {"database": partial(db.ping, engine)}
    finally:
        await db.dispose(engine)


@asynccontextmanager
async def kafka_producer(app: FastAPI, settings: KafkaSettings) -> AsyncIterator[dict[str, Check]]:
    """The service's topics, created if missing, and a started producer on `app.state`; its
    check fails while the broker is away or publishing fails."""
    producer = kafka.Producer(settings)
    await producer.start()
    app.state.producer = producer
    try:
        yield {"kafka": producer.ping}
    finally:
        await producer.stop()


@asynccontextmanager
async def token_verifier(app: FastAPI, settings: ApiSettings) -> AsyncIterator[dict[str, Check]]:
    """A verifier of access tokens on `app.state.verifier`, keys fetched from the JWKS URL, and
    the cache of account standings that ends revoked tokens on `app.state.standings`: what
    `libs.security.auth` needs. Enter it after `database`, whose sessions the standings are read
    with.

    Contributes no readiness check: a service whose auth service is briefly away still serves
    requests whose tokens it can verify with the keys it has.
    """
    app.state.standings = revocation.StandingCache(
        app.state.sessions, max_staleness_s=settings.auth_revocation_max_staleness_s
    )
    async with httpx.AsyncClient(timeout=JWKS_TIMEOUT_S, follow_redirects=False) as client:
        keys = tokens.KeyCache(
            tokens.http_jwks(client, settings.auth_jwks_url),
            algorithm=settings.auth_algorithm,
            max_age_s=settings.auth_jwks_max_age_s,
            refresh_min_interval_s=settings.auth_jwks_refresh_min_interval_s,
        )
        app.state.verifier = tokens.Verifier(
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
            algorithm=settings.auth_algorithm,
            keys=keys,
            leeway_s=settings.auth_leeway_s,
        )
        yield {}


@asynccontextmanager
async def all_of(app: FastAPI, *parts: Resource) -> AsyncIterator[dict[str, Check]]:
    """Enter `parts` in order and leave them in reverse; their checks are merged."""
    async with AsyncExitStack() as stack:
        checks: dict[str, Check] = {}
        for part in parts:
            checks.update(await stack.enter_async_context(part(app)))
        yield checks


class Loops(Protocol):
    """A worker's background loops, as its lifespan runs them."""

    def start(self) -> None: ...

    async def shutdown(self, grace_s: float) -> None: ...

    def checks(self) -> dict[str, Check]: ...


@asynccontextmanager
async def background(
    app: FastAPI, name: str, build: Callable[[FastAPI], Loops], grace_s: float
) -> AsyncIterator[dict[str, Check]]:
    """A worker's loops, built over the resources entered before (on `app.state.<name>`) and
    started; stopped within `grace_s` when the block ends, before those resources close."""
    loops = build(app)
    setattr(app.state, name, loops)
    loops.start()
    try:
        yield loops.checks()
    finally:
        await loops.shutdown(grace_s)


def worker_app(
    settings: Any,  # ServiceSettings and KafkaSettings: a worker's own Settings
    *,
    title: str,
    name: str,
    build: Callable[[FastAPI], Loops],
    grace_s: float,
) -> FastAPI:
    """The app of a worker service (scheduler, executor): no API of its own, only `libs.infra.web`'s
    health, readiness and metrics, and its loops (`background`) over a database engine and a
    Kafka producer, entered in that order and closed in the reverse one."""
    return web.create_app(
        settings,
        title=title,
        lifespan=lambda app: all_of(
            app,
            # A worker's every transaction is retried by its loop: a pooled connection the
            # server dropped costs one retry, not a round trip before every transaction.
            partial(database, settings=settings, pre_ping=False),
            partial(kafka_producer, settings=settings),
            lambda app: background(app, name, build, grace_s),
        ),
    )
