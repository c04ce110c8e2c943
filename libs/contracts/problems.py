"""RFC 9457 problem details: the one shape every error takes over HTTP.

Domain code raises a `Problem` subclass named for what went wrong; the handlers installed by
`install` render it, FastAPI's validation errors and any unexpected exception as
`application/problem+json`. An unexpected exception says nothing of its cause to the client
(the log has it, with the request id the client can quote). An exception that means the
database is unavailable is no bug of the service: it is answered 503 with `Retry-After` and
logged as one warning line, without a traceback.
"""

from __future__ import annotations

from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from libs.infra import db, log

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://scheduler.dev/problems/"  # stable identifiers, not fetched by clients
UNAVAILABLE_RETRY_AFTER_S = 2  # while the database is away; a restart takes about this long


class Problem(Exception):
    """An error with an HTTP rendering. Subclasses set `status`, `slug` and `title`."""

    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ):
        super().__init__(detail or self.title)
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions


def body(
    status: int, slug: str, title: str, detail: str | None, instance: str | None, **extensions: Any
) -> dict[str, Any]:
    document: dict[str, Any] = {"type": TYPE_BASE + slug, "title": title, "status": status}
    if detail:
        document["detail"] = detail
    if instance:
        document["instance"] = instance
    document.update(extensions)
    return document


def response(
    status: int,
    slug: str,
    title: str,
    detail: str | None = None,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    return JSONResponse(
        body(status, slug, title, detail, instance, **extensions),
        status_code=status,
        media_type=MEDIA_TYPE,
        headers=headers,
    )


_HTTP_TITLES = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    429: ("too-many-requests", "Too many requests"),
}


def _field_name(loc: tuple[Any, ...]) -> str:
    # FastAPI prefixes the part of the request ("body", "query", ...): keep it, it helps.
    return ".".join(str(part) for part in loc)


def _database_unavailable(request: Request, exc: BaseException) -> JSONResponse:
    cause = db.unavailable_cause(exc)
    log.get().warning(
        "database_unavailable",
        path=request.url.path,
        error=type(exc).__name__,
        cause=type(cause).__name__,
    )
    return response(
        503,
        "service-unavailable",
        "Service unavailable",
        "the database is unavailable; retry the request later",
        instance=request.url.path,
        headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)},
    )


def install(app: FastAPI) -> None:
    """Render every error of `app` as a problem document."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return response(
            exc.status,
            exc.slug,
            exc.title,
            exc.detail,
            instance=request.url.path,
            headers=exc.headers,
            **exc.extensions,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # The input value is never echoed back: it may be a password.
        errors = [
            {"field": _field_name(tuple(e["loc"])), "message": e["msg"], "code": e["type"]}
            for e in exc.errors()
        ]
        return response(
            422,
            "validation-failed",
            "The request is not valid",
            "; ".join(f"{e['field']}: {e['message']}" for e in errors),
            instance=request.url.path,
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug, title = _HTTP_TITLES.get(exc.status_code, ("error", "Error"))
        same = isinstance(exc.detail, str) and exc.detail.lower() == title.lower()
        detail = exc.detail if isinstance(exc.detail, str) and not same else None
        return response(
            exc.status_code,
            slug,
            title,
            detail,
            instance=request.url.path,
            headers=getattr(exc, "headers", None),
        )

    # Registered for the driver's own types rather than found by `_unexpected` alone: Starlette
    # runs the handler of `Exception` in its outermost middleware and raises the exception
    # again once the 500 is sent, for the server to log its traceback and then close the
    # client's keep-alive connection; the handlers of other types end the exception.
    async def _driver_error(request: Request, exc: Exception) -> JSONResponse:
        if not db.is_unavailable(exc):
            raise exc  # a bug or a statement's error: rendered by `_unexpected`
        return _database_unavailable(request, exc)

    for error_type in db.DRIVER_ERRORS:
        app.add_exception_handler(error_type, _driver_error)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Wrapped in an exception of another type: answered alike, but raised again as above.
        if db.is_unavailable(exc):
            return _database_unavailable(request, exc)
        log.get().error("request_failed", path=request.url.path, exc_info=exc)
        return response(500, "internal-error", "Internal error", instance=request.url.path)
