"""HTTP side of the executor service: no public API; health, readiness and metrics only."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from executor_service.settings import Settings
from libs import resources, web


def create_app(settings: Settings) -> FastAPI:
    return web.create_app(
        settings,
        title="Executor service",
        lifespan=lambda app: resources.all_of(
            app,
            partial(resources.database, settings=settings),
            partial(resources.kafka_producer, settings=settings),
        ),
    )
