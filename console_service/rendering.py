"""The one way a page answers: `render` a template in the layout, with what every page shows
(the signed-in account, the navigation it may see, the CSRF token); and the one place errors
become pages (`install`): the console's own, the APIs' (their problem `detail`, never raw
JSON) and unexpected ones (a plain apology, the traceback only in the log).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from console_service import errors, sessions
from console_service.pages import NavLink
from libs.infra import db, log
from scheduler_client import errors as api_errors

HTMX_REQUEST = "hx-request"
HTMX_REDIRECT = "HX-Redirect"
SIGN_IN_PATH = "/sign-in"
# Why the sign-in page is shown, by the `notice` it is sent with: fixed texts, so that no
# link can make the page say something else.
NOTICES = {
    "ended": "Your session ended. Sign in again to continue.",
    "signed-out": "You signed out.",
}


def templates() -> Jinja2Templates:
    """The console's templates, autoescaped, an undefined name an error rather than blank."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("console_service", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return Jinja2Templates(env=environment)


def is_htmx(request: Request) -> bool:
    return request.headers.get(HTMX_REQUEST) == "true"


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    fragment: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """`template` rendered with `context`; an htmx request gets `fragment` instead when one is
    named (the part of the page it updates, which the full template includes)."""
    signed_in: sessions.SignedIn | None = getattr(request.state, "signed_in", None)
    nav: Sequence[NavLink] = request.app.state.nav
    shared = {
        "me": signed_in,
        "nav": [
            link for link in nav if signed_in and (not link.scope or signed_in.can(link.scope))
        ],
        "csrf_token": signed_in.csrf_token if signed_in else None,
        "path": request.url.path,
    }
    name = fragment if fragment is not None and is_htmx(request) else template
    return request.app.state.templates.TemplateResponse(
        request, name, {**shared, **(context or {})}, status_code=status, headers=headers
    )


def field_errors(exc: api_errors.ApiError) -> dict[str, str]:
    """The API's complaints by form field (`body.schedule.expression` -> `schedule.expression`),
    the first one of each field."""
    fields: dict[str, str] = {}
    for error in exc.errors:
        name = error.field.removeprefix("body.").removeprefix("query.")
        fields.setdefault(name, error.message)
    return fields


def message(exc: api_errors.ApiError) -> str:
    """What the API said, for a person: the problem's detail, else its title."""
    return exc.detail or exc.title


def error_page(request: Request, status: int, title: str, text: str) -> HTMLResponse:
    return render(request, "error.html", {"title": title, "message": text}, status=status)


def safe_next(target: str | None) -> str:
    """Where to go after sign-in: a path of this console, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/jobs"
    return target


def to_sign_in(request: Request, notice: str | None = None) -> Response:
    """Send the browser to the sign-in page, to come back here afterwards (htmx follows
    `HX-Redirect`, a plain request the 303)."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    query = {"next": here if request.method == "GET" else "/jobs"}
    if notice:
        query["notice"] = notice
    url = f"{SIGN_IN_PATH}?{urlencode(query)}"
    if is_htmx(request):
        return Response(status_code=204, headers={HTMX_REDIRECT: url})
    return RedirectResponse(url, status_code=303)


_API_STATUS = {400: 400, 403: 403, 404: 404, 409: 409, 412: 409, 422: 422, 429: 429}
_TITLES = {
    400: "Not understood",
    403: "Not allowed",
    404: "Not found",
    409: "Changed meanwhile",
    422: "Not accepted",
    429: "Too many requests",
    502: "The platform answered with an error",
    503: "The platform cannot be reached",
}


def install(app: FastAPI) -> None:
    """Render every error of the console's pages as a page (replacing `libs.contracts.problems`'s
    JSON answers, which suit an API, not a browser)."""

    @app.exception_handler(errors.SignInRequired)
    async def _sign_in(request: Request, exc: errors.SignInRequired) -> Response:
        return to_sign_in(request)

    @app.exception_handler(errors.SessionEnded)
    async def _ended(request: Request, exc: errors.SessionEnded) -> Response:
        log.get().info("console_session_refused", reason=str(exc))
        response = to_sign_in(request, "ended")
        sessions.delete_cookie(response, request.app.state.settings, sessions.COOKIE)
        return response

    @app.exception_handler(errors.CsrfRefused)
    async def _csrf(request: Request, exc: errors.CsrfRefused) -> Response:
        log.get().warning("console_csrf_refused", path=request.url.path, reason=str(exc))
        text = (
            "This form was not sent from this console's own page, or the page is too old. "
            "Nothing was changed. Reload the page and try again."
        )
        return error_page(request, 403, "Request refused", text)

    @app.exception_handler(errors.PageNotFound)
    async def _not_found(request: Request, exc: errors.PageNotFound) -> Response:
        return error_page(request, 404, "Not found", "There is no such page.")

    @app.exception_handler(api_errors.ApiError)
    async def _api_error(request: Request, exc: api_errors.ApiError) -> Response:
        status = _API_STATUS.get(exc.status, 502)
        text = message(exc)
        if exc.request_id:
            text += f" (request id {exc.request_id})"
        return error_page(request, status, _TITLES[status], text)

    @app.exception_handler(api_errors.ConnectionFailed)
    async def _unreachable(request: Request, exc: api_errors.ConnectionFailed) -> Response:
        log.get().warning("console_api_unreachable", reason=exc.reason)
        text = "The platform's services did not answer. Try again in a moment."
        return error_page(request, 503, _TITLES[503], text)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return error_page(request, 404, "Not found", "There is no such page.")
        text = exc.detail if isinstance(exc.detail, str) else "The request was refused."
        return error_page(request, exc.status_code, "Request refused", text)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        text = "The address or the form has a value this page does not accept."
        return error_page(request, 400, "Not understood", text)

    async def _driver_error(request: Request, exc: Exception) -> Response:
        if not db.is_unavailable(exc):
            raise exc  # a bug or a statement's error: rendered by `_unexpected`
        log.get().warning("database_unavailable", reason=type(exc).__name__)
        return error_page(request, 503, "Unavailable", "The console cannot work right now.")

    for error_type in db.DRIVER_ERRORS:
        app.add_exception_handler(error_type, _driver_error)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.get().error("request_failed", path=request.url.path, exc_info=exc)
        return error_page(
            request, 500, "Something went wrong", "The console failed to answer this request."
        )
