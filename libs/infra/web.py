"""What every service's HTTP side shares: `/healthz`, `/readyz`, `/metrics`, request ids,
request logs and metrics, problem-details errors, and the API docs (`/docs`, `/redoc`).

A service hands `create_app` a lifespan that builds its resources and yields its readiness
checks (name -> coroutine that raises when the dependency is unusable). `/readyz` answers 200
only while every check passes and the service is not shutting down, so a load balancer stops
sending work before the process exits.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.openapi import docs
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs.contracts import problems
from libs.infra import log, undeclared_input
from libs.infra.config import ServiceSettings

Check = Callable[[], Awaitable[None]]
ServiceLifespan = Callable[[FastAPI], AbstractAsyncContextManager[dict[str, Check]]]

CHECK_TIMEOUT_S = 2.0
REQUEST_ID_HEADER = "x-request-id"
# A caller's request id is kept only if it is short and plain, so it cannot forge log lines.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Routes probed or scraped every few seconds: their request lines are debug unless they fail.
OPERATIONAL_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
# The route label of a request no route matched (404), so unknown paths add no label values.
UNMATCHED_ROUTE = "unmatched"
# What `generate_latest` writes: the classic text format 0.0.4, which every scraper reads.
# Not prometheus_client's CONTENT_TYPE_LATEST, which names version 1.0.0 since 0.22.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Swagger UI's and ReDoc's scripts, style sheet and icon, served by the service itself so the
# docs work without internet: the files come with the `fastapi-offline` distribution, in its
# `static` folder (its FastAPI factory is not used: the app is a `_ServiceApp`).
DOCS_ASSETS_PATH = "/docs/assets"
DOCS_ASSETS_PACKAGE = ("fastapi_offline", "static")


class Metrics:
    """One registry per app (not the process-global default), so tests and apps don't mix."""

    def __init__(self, settings: ServiceSettings):
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        info = Gauge(
            "service_info", "Static facts about this process.", ["service", "node_id"],
            registry=self.registry,
        )  # fmt: skip
        info.labels(settings.service_name, settings.node_id).set(1)
        self.requests = Counter(
            "http_requests_total", "HTTP requests answered.", ["method", "route", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "http_request_duration_seconds", "Time to answer an HTTP request.",
            ["method", "route"], registry=self.registry,
        )  # fmt: skip


def request_log_level(route: str, status: int) -> int:
    """The level of a request's `http_request` line: info, but debug for the probes and the
    scrapes of `OPERATIONAL_ROUTES` (they would flood the log), and warning when one of those
    fails (status 500 and above, a not-ready `/readyz` included)."""
    if route not in OPERATIONAL_ROUTES:
        return logging.INFO
    return logging.WARNING if status >= 500 else logging.DEBUG


class RequestContext:
    """Binds a request id to the logs of a request, logs it and counts it, both under the
    template of the route that answered it (`/v1/jobs/{job_id}`, `/healthz`)."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        # fullmatch: `match` with `$` would accept a trailing newline ("abc\n").
        request_id = supplied if _REQUEST_ID.fullmatch(supplied) else uuid.uuid4().hex
        log.clear_ids()
        log.bind_ids(request_id=request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"].append((REQUEST_ID_HEADER.encode(), request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            # Set by FastAPI's router for its own routes only, not for a Starlette `Mount` or
            # `Route`: every route of a service is a FastAPI route (the docs' files included).
            route = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(scope["method"], route).observe(elapsed)
            log.get().log(
                request_log_level(route, status), "http_request", method=scope["method"],
                route=route, status=status, duration_ms=round(elapsed * 1000, 2),
            )  # fmt: skip
            log.clear_ids()


class BodyLimit:
    """Refuses request bodies over `max_bytes` with 413, by their Content-Length or, without
    one, as soon as the streamed body passes the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except _BodyTooLarge:
            if not started:  # else the response is cut short, as nothing else can be sent
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problems.response(
            413,
            "payload-too-large",
            "Payload too large",
            f"the request body exceeds {self.max_bytes} bytes",
            instance=scope["path"],
        )
        await response(scope, receive, send)


class _BodyTooLarge(BaseException):
    """Raised from `receive` through the app up to `BodyLimit`.

    Not an `Exception`, so that nothing in between takes it for an error of its own: FastAPI
    turns an `Exception` raised while it reads a body into a 400, and Starlette's error
    middleware sends a 500 for it, either before `BodyLimit` could send its 413.
    """


async def _run_checks(checks: dict[str, Check]) -> dict[str, str]:
    async def one(check: Check) -> str:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await check()
        except TimeoutError:
            return "timeout"
        except Exception as exc:
            return f"failed: {type(exc).__name__}"
        return "ok"

    results = await asyncio.gather(*(one(c) for c in checks.values()))
    return dict(zip(checks, results, strict=True))


def _operational_routes() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @router.get("/readyz")
    async def readyz(request: Request, response: Response) -> dict[str, Any]:
        state = request.app.state
        if state.draining or not state.started:
            response.status_code = 503
            return {"status": "draining" if state.draining else "starting", "checks": {}}
        results = await _run_checks(state.checks)
        ready = all(value == "ok" for value in results.values())
        response.status_code = 200 if ready else 503
        return {"status": "ready" if ready else "not_ready", "checks": results}

    @router.get("/metrics")
    async def metrics(request: Request) -> Response:
        registry = request.app.state.metrics.registry
        return Response(generate_latest(registry), media_type=METRICS_CONTENT_TYPE)

    return router


def _docs_routes() -> APIRouter:
    """`/docs` (Swagger UI) and `/redoc`, loading nothing but the service's own files.

    No OAuth2 redirect page: the APIs take a bearer token pasted into Swagger UI's Authorize
    dialog, no OAuth2 flow runs in the browser. The files are served by a route rather than a
    `StaticFiles` mount so that their requests are labelled with a route like any other.
    """
    router = APIRouter(include_in_schema=False)
    assets = StaticFiles(packages=[DOCS_ASSETS_PACKAGE])

    @router.get(DOCS_ASSETS_PATH + "/{name}")
    async def docs_asset(name: str, request: Request) -> Response:
        return await assets.get_response(name, request.scope)

    @router.get("/docs")
    async def swagger_ui(request: Request) -> HTMLResponse:
        app, root = request.app, request.scope.get("root_path", "")
        return docs.get_swagger_ui_html(
            openapi_url=root + app.openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_PATH}/favicon.png",
        )

    @router.get("/redoc")
    async def redoc(request: Request) -> HTMLResponse:
        app, root = request.app, request.scope.get("root_path", "")
        return docs.get_redoc_html(
            openapi_url=root + app.openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )

    return router


class _ServiceApp(FastAPI):
    """Puts `RequestContext` outside every middleware, Starlette's error middleware included.

    Added with `add_middleware`, it would sit inside that middleware, which renders the 500 of
    an unexpected exception: the 500 would go out without the request id header, and the
    `request_failed` line would be logged after the ids were cleared.
    """

    def build_middleware_stack(self) -> ASGIApp:
        limited = BodyLimit(super().build_middleware_stack(), self.state.max_body_bytes)
        return RequestContext(limited, self.state.metrics)


def create_app(
    settings: ServiceSettings,
    *,
    title: str,
    lifespan: ServiceLifespan,
    routers: Sequence[APIRouter] = (),
    api_docs: bool = True,
) -> FastAPI:
    """A FastAPI app with the operational endpoints, error rendering and request context;
    `api_docs=False` for a service with no API to document (no `/docs`, `/redoc`, OpenAPI)."""

    @asynccontextmanager
    async def app_lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with lifespan(app) as checks:
            app.state.checks = checks
            app.state.started = True
            log.get().info("service_started", port=settings.http_port)
            try:
                yield
            finally:
                app.state.draining = True
                log.get().info("service_stopping")

    app = _ServiceApp(
        title=title,
        lifespan=app_lifespan,
        openapi_url="/openapi.json" if api_docs else None,
        docs_url=None,  # `/docs` and `/redoc` are served by `_docs_routes`, from the
        redoc_url=None,  # service's own files
        dependencies=[Depends(undeclared_input.refuse_undeclared_input)],
    )
    app.state.settings = settings
    app.state.max_body_bytes = settings.http_max_body_bytes
    app.state.metrics = Metrics(settings)
    app.state.checks = {}
    app.state.started = False
    app.state.draining = False
    problems.install(app)
    app.include_router(_operational_routes())
    if api_docs:
        app.include_router(_docs_routes())
    for router in routers:
        app.include_router(router)
    return app
