"""Start a service process: settings, logging, then uvicorn until SIGTERM or Ctrl-C.

Uvicorn's own shutdown is the graceful one: it stops accepting connections, lets requests in
flight finish (up to `shutdown_grace_s`), then runs the lifespan's exit, where a service hands
back what it holds and closes its pools.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from typing import TypeVar

import uvicorn
from fastapi import FastAPI

from libs.infra import config, log

S = TypeVar("S", bound=config.ServiceSettings)

EXIT_CONFIG_ERROR = 2
EXIT_START_FAILED = 3


def server_config(settings: config.ServiceSettings, app: FastAPI) -> uvicorn.Config:
    """How uvicorn serves `app` for a service with `settings`."""
    trusted = settings.trusted_proxies()
    return uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,  # logging is ours (libs.infra.log)
        access_log=False,  # requests are logged by libs.infra.web with their ids
        lifespan="on",
        # uvloop where it is installed (a dependency on every platform it builds for): its
        # event loop, callbacks and socket transports are C, and a worker's own Python runs
        # between them for every message and every database round trip. asyncio's loop
        # otherwise.
        loop="auto",
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
        server_header=False,
        # Forwarded headers only from the proxies named in the settings, never by default:
        # uvicorn's own default believes any loopback peer (or FORWARDED_ALLOW_IPS), which lets
        # a local client or a pass-through proxy choose the address the login limits count.
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted,
    )


def run(settings_cls: type[S], build_app: Callable[[S], FastAPI]) -> None:
    try:
        settings = config.load(settings_cls)
    except config.ConfigError as exc:
        print(f"{settings_cls.service_name}: configuration error: {exc}", file=sys.stderr)
        sys.exit(EXIT_CONFIG_ERROR)
    log.configure(
        service=settings.service_name,
        node_id=settings.node_id,
        log_format=settings.resolved_log_format,
        level=settings.log_level,
    )
    log.get().info("configuration_loaded", settings=settings.describe())
    try:
        # A service may refuse a combination of settings that each are valid on their own.
        app = build_app(settings)
    except config.ConfigError as exc:
        print(f"{settings_cls.service_name}: configuration error: {exc}", file=sys.stderr)
        sys.exit(EXIT_CONFIG_ERROR)
    # What the imports and the app built stays for the process's life: kept out of the cyclic
    # collector's generations, later collections do not walk it again and again.
    gc.collect()
    gc.freeze()
    server = uvicorn.Server(server_config(settings, app))
    server.run()
    if not server.started:
        sys.exit(EXIT_START_FAILED)
