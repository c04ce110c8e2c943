"""HTTP side of the scheduler service: no public API; health, readiness and metrics only."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from libs import resources, web
from scheduler_service.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    return web.create_app(
        settings,
        title="Scheduler service",
        lifespan=lambda app: resources.all_of(
            app,
            partial(resources.database, settings=settings),
            partial(resources.kafka_producer, settings=settings),
        ),
    )
