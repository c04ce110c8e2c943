"""Structured logging, configured once per process.

Every line carries `service` and `node_id`; request, job and execution ids are bound with
`bind_ids` (context variables, so they follow a task and do not leak into its neighbours).
Production writes one JSON object per line; development writes readable lines. Logs from
libraries (uvicorn, aiokafka, SQLAlchemy) go through the same pipeline.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

# Libraries that are chatty at INFO and say nothing an operator needs there.
QUIET_LOGGERS = ("aiokafka", "kafka", "sqlalchemy.engine", "uvicorn.access", "alembic.runtime")


def configure(
    *,
    service: str,
    node_id: str,
    log_format: Literal["json", "console"],
    level: str = "INFO",
) -> None:
    """Route structlog and the standard library's logging to stderr in `log_format`."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _static_fields(service=service, node_id=node_id),
        structlog.stdlib.ExtraAdder(),
        _drop_keys("color_message"),  # uvicorn's ANSI-coloured duplicate of the message
    ]
    renderer: structlog.types.Processor
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())

    structlog.configure(
        # A call below the level stops here, before the processors and the standard library
        # build a line that would be dropped.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    # What a record would carry and no line shows (the renderers write the event's own keys):
    # the caller's file and line, found by walking the stack, and the thread's and process's
    # names, looked up for every record (the logging HOWTO's "Optimization").
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # uvicorn installs its own handlers; let its records reach ours instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def _static_fields(**fields: str) -> structlog.types.Processor:
    def add(_logger: object, _method: str, event: dict) -> dict:
        for key, value in fields.items():
            event.setdefault(key, value)
        return event

    return add


def _drop_keys(*keys: str) -> structlog.types.Processor:
    def drop(_logger: object, _method: str, event: dict) -> dict:
        for key in keys:
            event.pop(key, None)
        return event

    return drop


def bind_ids(**ids: object) -> None:
    """Bind ids (`request_id`, `job_id`, `execution_id`) to every line of the current task."""
    structlog.contextvars.bind_contextvars(**{k: str(v) for k, v in ids.items() if v is not None})


def clear_ids() -> None:
    structlog.contextvars.clear_contextvars()


def get(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
