"""The caller's webhook signing secret: what it is for (docs/webhooks.md), shown only in the
answer to a POST ("Show my secret", never on a GET, never cached), and rotated after a
confirmation with a grace period during which the old secret still signs beside the new.

The API needs `jobs:write` to read the secret (a credential), so the page does too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from console_service import pages, rendering
from libs.security import scopes
from scheduler_client import models

router = APIRouter(include_in_schema=False)
PAGES = pages.PageGroup(
    router=router,
    nav=(pages.NavLink("Webhook secret", "/webhook-secret", order=40, scope=scopes.JOBS_WRITE),),
)
DAY_S = 24 * 3600
# The grace periods offered: how long the old secret keeps signing after a rotation.
GRACE_CHOICES = (
    (DAY_S, "A day: receivers have time to switch to the new secret (usual)"),
    (0, "None: the old secret stops signing at once (within half a minute; it leaked)"),
)
# An answer showing a secret is never stored by the browser or anything between.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _about(secret: models.WebhookSecret) -> dict[str, Any]:
    """What a GET may show of the secret: its times, never the secret itself."""
    now = datetime.now(UTC)
    grace_until = secret.previous_valid_until
    return {
        "created_at": secret.created_at,
        "rotated_at": secret.rotated_at,
        "previous_valid_until": grace_until if grace_until and grace_until > now else None,
    }


def _page(
    request: Request,
    secret: models.WebhookSecret,
    *,
    shown: str | None = None,
    rotated: bool = False,
    grace_s: int | None = None,
) -> HTMLResponse:
    return rendering.render(
        request,
        "webhook/secret.html",
        {
            "about": _about(secret),
            "shown": shown,
            "rotated": rotated,
            "grace_s": grace_s,
            "grace_choices": GRACE_CHOICES,
        },
        headers=NO_STORE,
    )


@router.get("/webhook-secret", dependencies=[pages.requires(scopes.JOBS_WRITE)])
async def show_page(request: Request, api: pages.Api) -> HTMLResponse:
    secret = await api.call(lambda client: client.webhook_secret.get())
    return _page(request, secret)


@router.post("/webhook-secret/show", dependencies=[pages.requires(scopes.JOBS_WRITE)])
async def show_secret(request: Request, api: pages.Api) -> HTMLResponse:
    secret = await api.call(lambda client: client.webhook_secret.get())
    return _page(request, secret, shown=secret.secret)


@router.get("/webhook-secret/rotate", dependencies=[pages.requires(scopes.JOBS_WRITE)])
async def confirm_rotation(request: Request) -> HTMLResponse:
    """The confirmation without JavaScript (with it, a dialog on the secret's page)."""
    return rendering.render(request, "webhook/rotate.html", {"grace_choices": GRACE_CHOICES})


@router.post("/webhook-secret/rotate", dependencies=[pages.requires(scopes.JOBS_WRITE)])
async def rotate(
    request: Request, api: pages.Api, grace: Annotated[int, Form()] = DAY_S
) -> HTMLResponse:
    if grace not in {seconds for seconds, _ in GRACE_CHOICES}:
        return rendering.render(
            request,
            "webhook/rotate.html",
            {"grace_choices": GRACE_CHOICES, "error": "Choose one of the grace periods."},
            status=400,
        )
    secret = await api.call(lambda client: client.webhook_secret.rotate(grace_s=grace))
    return _page(request, secret, shown=secret.secret, rotated=True, grace_s=grace)
