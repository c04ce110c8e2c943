"""Signing in and out, and `/`. Sign-in is the one POST without a session: its form is
protected by a double-submitted token (a cookie and the same value in the form)."""

from __future__ import annotations

import hmac
import math
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from console_service import errors, pages, rendering, security, sessions
from console_service.settings import Settings
from libs.infra import log
from libs.security import emails
from scheduler_client import PasswordLogin
from scheduler_client import errors as api_errors

router = APIRouter(include_in_schema=False)
PAGES = pages.PageGroup(router=router)
PASSWORD_MAX_LENGTH = 1_024


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _wait(seconds: float | None) -> str:
    if seconds is None:
        return "a while"
    if seconds < 60:
        return f"{max(1, math.ceil(seconds))} seconds"
    minutes = math.ceil(seconds / 60)
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def _form(
    request: Request,
    *,
    next_path: str,
    email: str = "",
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    """The sign-in page, with its pre-session CSRF token (the cookie's, or a new one)."""
    name = sessions.cookie_name(_settings(request), sessions.PRE_SESSION_COOKIE)
    token = request.cookies.get(name) or security.new_token()
    response = rendering.render(
        request,
        "account/sign_in.html",
        {
            "sign_in_csrf": token,
            "next_path": next_path,
            "email": email,
            "notice": rendering.NOTICES.get(notice or ""),
            "error": error,
        },
        status=status,
    )
    sessions.set_cookie(response, _settings(request), sessions.PRE_SESSION_COOKIE, token)
    return response


@router.get("/")
async def home() -> Response:
    return RedirectResponse("/jobs", status_code=303)


@router.get(rendering.SIGN_IN_PATH)
async def sign_in_page(
    request: Request,
    next_path: Annotated[str, Query(alias="next", max_length=2_000)] = "/jobs",
    notice: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    return _form(request, next_path=rendering.safe_next(next_path), notice=notice)


@router.post(rendering.SIGN_IN_PATH)
async def sign_in(
    request: Request,
    email: Annotated[str, Form(max_length=emails.MAX_LENGTH)] = "",
    password: Annotated[str, Form(max_length=PASSWORD_MAX_LENGTH)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
    next_path: Annotated[str, Form(alias="next", max_length=2_000)] = "/jobs",
) -> Response:
    security.check_origin(request)
    expected = request.cookies.get(
        sessions.cookie_name(_settings(request), sessions.PRE_SESSION_COOKIE)
    )
    if not expected or not csrf or not hmac.compare_digest(csrf, expected):
        raise errors.CsrfRefused("sign-in form without its double-submitted token")
    target = rendering.safe_next(next_path)
    email = email.strip()

    def again(error: str, status: int) -> HTMLResponse:
        return _form(request, next_path=target, email=email, error=error, status=status)

    if not email or not password:
        return again("Enter your email and your password.", 400)
    try:
        async with sessions.api_client(request, PasswordLogin(email, password)) as client:
            tokens = await client.login()
            response = RedirectResponse(target, status_code=303)
            await sessions.start(request, response, client, tokens)
            return response
    except api_errors.LoginLocked as exc:
        return again(
            "Too many failed sign-ins: this login is locked for now. "
            f"Try again in {_wait(exc.retry_after)}.",
            429,
        )
    except api_errors.ServiceUnavailable:
        return again("The platform is busy signing others in. Try again in a few seconds.", 503)
    except (api_errors.BadRequest, api_errors.Unauthorized, api_errors.Forbidden):
        log.get().info("console_sign_in_refused")
        return again("Wrong email or password.", 401)


@router.post("/sign-out")
async def sign_out(request: Request, signed_in: pages.SignedIn) -> Response:
    """Revoke the session's refresh token (and its family) and delete the session."""
    await sessions.sign_out(request, signed_in)
    response = RedirectResponse(f"{rendering.SIGN_IN_PATH}?notice=signed-out", status_code=303)
    sessions.delete_cookie(response, _settings(request), sessions.COOKIE)
    return response
