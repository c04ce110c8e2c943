"""The console's composition: the operational endpoints of every service (`libs.infra.web`), the
security headers, the static files, every page group of `pages`, and the error pages.

Resources built in the lifespan: the database engine (sessions live in `console_sessions`)
and one HTTP connection pool for every call to the platform's APIs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources as package_files

import httpx
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

from console_service import pages, rendering, security
from console_service.settings import Settings
from libs.infra import resources, web
from libs.infra.web import Check
from scheduler_client import Endpoints

TITLE = "Scheduler console"


def _static_routes() -> APIRouter:
    """`/static/...`: the style sheet, console.js and the vendored htmx, served by a route (not
    a mount) so that their requests are labelled like any other (`libs.infra.web`)."""
    router = APIRouter(include_in_schema=False)
    files = StaticFiles(directory=str(package_files.files("console_service") / "static"))

    @router.get(security.STATIC_PREFIX + "{name:path}")
    async def static(name: str, request: Request) -> Response:
        return await files.get_response(name, request.scope)

    return router


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Check]]:
        app.state.endpoints = Endpoints(
            jobs=settings.jobs_api_url, users=settings.users_api_url, auth=settings.auth_api_url
        )
        async with (
            resources.database(app, settings) as checks,
            httpx.AsyncClient(timeout=settings.api_timeout_s, follow_redirects=False) as http,
        ):
            app.state.http = http
            # Ready with its database: the APIs' own outages are shown on the pages that need
            # them, and a console that cannot show its sign-in page helps nobody.
            yield checks

    groups = pages.discover()
    app = web.create_app(
        settings,
        title=TITLE,
        lifespan=lifespan,
        routers=[_static_routes(), *(group.router for group in groups)],
        api_docs=False,
    )
    app.state.templates = rendering.templates()
    app.state.nav = pages.navigation(groups)
    rendering.install(app)
    app.add_middleware(security.SecurityHeaders)
    return app
