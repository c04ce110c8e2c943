"""The admin pages: nodes, users and service accounts. Every route requires `users:admin`
(404 for anyone else, and the navigation links show to admins only).

- Nodes: the schedulers' and executors' heartbeats, up or down, refreshed every few seconds.
- Users: a list searched by email prefix, and a user's page with their role, disable and
  enable, and unlock (when failed logins lock them out). The API refuses to demote or disable
  the last admin and an admin's own account: its reason is shown on the page.
- Service accounts: a list, creation, and an account's page with secret rotation, disable and
  enable. A client secret is shown once, on the answer to the POST that made it (never on a
  GET, `Cache-Control: no-store`); console.js then replaces the address with the account's
  page, so that reloading shows the account, not the secret.

Disabling and rotating ask first: a confirmation page (GET, its POST form), which console.js
replaces with a `<dialog>` holding the same form.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from console_service import pages, rendering
from libs.security import emails, scopes
from scheduler_client import errors as api_errors
from scheduler_client import models

router = APIRouter(include_in_schema=False, dependencies=[pages.requires(scopes.USERS_ADMIN)])
PAGES = pages.PageGroup(
    router=router,
    nav=(
        pages.NavLink("Nodes", "/nodes", order=50, scope=scopes.USERS_ADMIN),
        pages.NavLink("Users", "/users", order=60, scope=scopes.USERS_ADMIN),
        pages.NavLink("Service accounts", "/service-accounts", order=70, scope=scopes.USERS_ADMIN),
    ),
)
PAGE_SIZE = 25
NODES_REFRESH_S = 5
NO_STORE = {"Cache-Control": "no-store"}
# What each scope lets a service account do, for the creation form.
SCOPE_HINTS = {
    scopes.JOBS_READ: "read jobs, executions and dead letters",
    scopes.JOBS_WRITE: "create, change and delete jobs",
    scopes.JOBS_RUN: "run, pause, resume and cancel jobs; replay dead letters",
    scopes.USERS_ADMIN: "administer users, service accounts and nodes (everything)",
}
# What a user's page says after an action, by the `done` it is sent with: fixed texts, so
# that no link can make the page say something else.
USER_NOTICES = {
    "role": "Role changed. The user's earlier sessions have ended.",
    "disabled": "User disabled. Their sessions have ended and they cannot sign in.",
    "enabled": "User enabled. They can sign in again.",
    "unlocked": "User unlocked. They can sign in again at once.",
}
ACCOUNT_NOTICES = {
    "disabled": "Service account disabled. Its tokens no longer work.",
    "enabled": "Service account enabled. It can get tokens again with its secret.",
}
USER_ACTIONS_DONE = {"disable": "disabled", "enable": "enabled", "unlock": "unlocked"}
Done = Annotated[str | None, Query(max_length=20)]


def ago(now: datetime, then: datetime) -> str:
    """How long before `now` `then` was, for a person: "4 s ago", "3 min ago", "2 h ago"."""
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3_600:
        return f"{seconds // 60} min ago"
    if seconds < 86_400:
        return f"{seconds // 3_600} h ago"
    return f"{seconds // 86_400} d ago"


def _refused(exc: api_errors.ApiError) -> str:
    """The API's reason for refusing an action, as a sentence."""
    reason = rendering.message(exc).rstrip(".")
    return f"Not changed: {reason[:1].upper()}{reason[1:]}."


# --- Nodes ----------------------------------------------------------------------------------


@router.get("/nodes")
async def nodes(request: Request, api: pages.Api) -> HTMLResponse:
    found = await api.call(lambda client: client.nodes.list())
    listed = sorted(found, key=lambda node: (node.service, node.hostname, node.node_id))
    return rendering.render(
        request,
        "admin/nodes.html",
        {
            "nodes": listed,
            "now": datetime.now(UTC),
            "ago": ago,
            "refresh_s": NODES_REFRESH_S,
        },
        fragment="admin/_nodes.html",
    )


# --- Users ----------------------------------------------------------------------------------


@router.get("/users")
async def users(
    request: Request,
    api: pages.Api,
    cursor: pages.Cursor = None,
    email: Annotated[str, Query(max_length=emails.MAX_LENGTH)] = "",
    locked: Annotated[bool, Query()] = False,
) -> HTMLResponse:
    prefix = email.strip()
    page = await api.call(
        lambda client: client.users.list(
            email=prefix or None, locked=True if locked else None, limit=PAGE_SIZE, cursor=cursor
        )
    )
    search = {key: value for key, value in (("email", prefix), ("locked", locked)) if value}
    links = {
        "first": f"/users?{urlencode(search)}" if cursor else None,
        "next": f"/users?{urlencode({**search, 'cursor': page.next_cursor})}"
        if page.next_cursor
        else None,
    }
    return rendering.render(
        request,
        "admin/users.html",
        {"users": page.items, "email": prefix, "locked": locked, "cursor": cursor, "links": links},
    )


def _user_page(
    request: Request,
    me: pages.SignedIn,
    user: models.User,
    *,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    return rendering.render(
        request,
        "admin/user.html",
        {
            "user": user,
            "is_me": user.id == me.account_id,
            "confirm_disable": _disable_user(user),
            "roles": [role.value for role in models.Role],
            "notice": notice,
            "error": error,
        },
        status=status,
    )


@router.get("/users/{user_id}")
async def user(
    request: Request, api: pages.Api, me: pages.SignedIn, user_id: uuid.UUID, done: Done = None
) -> HTMLResponse:
    found = await api.call(lambda client: client.users.get(user_id))
    return _user_page(request, me, found, notice=USER_NOTICES.get(done or ""))


async def _user_action(
    request: Request, api: pages.Api, me: pages.SignedIn, user_id: uuid.UUID, action: Any, done: str
) -> Response:
    """Run `action(client)`; back to the user's page with its notice, or with the API's reason
    for a refusal (the last admin, one's own account)."""
    try:
        await api.call(action)
    except api_errors.Conflict as exc:
        found = await api.call(lambda client: client.users.get(user_id))
        return _user_page(request, me, found, error=_refused(exc), status=409)
    return RedirectResponse(f"/users/{user_id}?done={done}", status_code=303)


@router.post("/users/{user_id}/role")
async def set_role(
    request: Request,
    api: pages.Api,
    me: pages.SignedIn,
    user_id: uuid.UUID,
    role: Annotated[models.Role, Form()],
) -> Response:
    return await _user_action(
        request, api, me, user_id, lambda client: client.users.set_role(user_id, role), "role"
    )


@router.get("/users/{user_id}/disable")
async def confirm_disable_user(request: Request, api: pages.Api, user_id: uuid.UUID) -> Response:
    found = await api.call(lambda client: client.users.get(user_id))
    return rendering.render(request, "admin/confirm.html", {"confirm": _disable_user(found)})


def _disable_user(user: models.User) -> dict[str, str]:
    """The confirmation of disabling `user`: its page without JavaScript, its dialog with."""
    return {
        "id": "confirm-disable-user",
        "title": f"Disable {user.email}?",
        "text": "They are signed out everywhere and cannot sign in, nor use their tokens, "
        "until an admin enables them again. Their jobs stay.",
        "action": f"/users/{user.id}/disable",
        "button": "Disable user",
        "cancel": f"/users/{user.id}",
    }


@router.post("/users/{user_id}/{action}")
async def act_on_user(
    request: Request,
    api: pages.Api,
    me: pages.SignedIn,
    user_id: uuid.UUID,
    action: Literal["disable", "enable", "unlock"],
) -> Response:
    """Disable, enable or unlock the user (`client.users.disable` and so on)."""
    return await _user_action(
        request,
        api,
        me,
        user_id,
        lambda client: getattr(client.users, action)(user_id),
        USER_ACTIONS_DONE[action],
    )


# --- Service accounts -----------------------------------------------------------------------


@router.get("/service-accounts")
async def service_accounts(
    request: Request, api: pages.Api, cursor: pages.Cursor = None
) -> HTMLResponse:
    page = await api.call(
        lambda client: client.service_accounts.list(limit=PAGE_SIZE, cursor=cursor)
    )
    return rendering.render(
        request,
        "admin/service_accounts.html",
        {"accounts": page.items, "next_cursor": page.next_cursor, "cursor": cursor},
    )


def _creation_form(
    request: Request,
    *,
    name: str = "",
    chosen: frozenset[str] = frozenset(),
    errors: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    return rendering.render(
        request,
        "admin/service_account_new.html",
        {
            "name": name,
            "chosen": chosen,
            "known_scopes": [(scope, SCOPE_HINTS.get(scope, "")) for scope in sorted(scopes.ALL)],
            "errors": errors or {},
            "error": error,
        },
        status=status,
    )


@router.get("/service-accounts/new")
async def new_service_account(request: Request) -> HTMLResponse:
    return _creation_form(request)


@router.post("/service-accounts")
async def create_service_account(
    request: Request,
    api: pages.Api,
    name: Annotated[str, Form(max_length=1_000)] = "",
    scope: Annotated[list[str], Form(max_length=20)] = [],  # noqa: B006 (FastAPI copies it)
) -> HTMLResponse:
    name, chosen = name.strip(), frozenset(scope)
    if not chosen:
        return _creation_form(
            request,
            name=name,
            errors={"scopes": "Choose at least one scope."},
            error="The service account was not created.",
            status=422,
        )
    try:
        created = await api.call(
            lambda client: client.service_accounts.create(name=name, scopes=sorted(chosen))
        )
    except api_errors.InvalidRequest as exc:
        return _creation_form(
            request,
            name=name,
            chosen=chosen,
            errors=rendering.field_errors(exc),
            error="The service account was not created.",
            status=422,
        )
    return _secret_page(request, created, rotated=False)


def _secret_page(
    request: Request, account: models.ServiceAccountWithSecret, *, rotated: bool
) -> HTMLResponse:
    """The one answer that shows `account`'s client secret: a POST's, never stored."""
    return rendering.render(
        request,
        "admin/service_account_secret.html",
        {"account": account, "rotated": rotated},
        headers=NO_STORE,
    )


@router.get("/service-accounts/{account_id}")
async def service_account(
    request: Request, api: pages.Api, account_id: uuid.UUID, done: Done = None
) -> HTMLResponse:
    found = await api.call(lambda client: client.service_accounts.get(account_id))
    return rendering.render(
        request,
        "admin/service_account.html",
        {
            "account": found,
            "notice": ACCOUNT_NOTICES.get(done or ""),
            "confirm_rotate": _rotate_secret(found),
            "confirm_disable": _disable_account(found),
        },
    )


def _rotate_secret(account: models.ServiceAccount) -> dict[str, str]:
    return {
        "id": "confirm-rotate-secret",
        "title": f"Rotate the secret of {account.name}?",
        "text": "A new client secret is made and shown once. The current secret stops working "
        "at once, and so do the tokens got with it: whatever uses it needs the new one.",
        "action": f"/service-accounts/{account.id}/rotate",
        "button": "Rotate secret",
        "cancel": f"/service-accounts/{account.id}",
    }


def _disable_account(account: models.ServiceAccount) -> dict[str, str]:
    return {
        "id": "confirm-disable-account",
        "title": f"Disable {account.name}?",
        "text": "It can no longer get tokens, and the tokens it holds stop working, until an "
        "admin enables it again.",
        "action": f"/service-accounts/{account.id}/disable",
        "button": "Disable service account",
        "cancel": f"/service-accounts/{account.id}",
    }


@router.get("/service-accounts/{account_id}/rotate")
async def confirm_rotate(request: Request, api: pages.Api, account_id: uuid.UUID) -> Response:
    found = await api.call(lambda client: client.service_accounts.get(account_id))
    return rendering.render(request, "admin/confirm.html", {"confirm": _rotate_secret(found)})


@router.post("/service-accounts/{account_id}/rotate")
async def rotate_secret(request: Request, api: pages.Api, account_id: uuid.UUID) -> Response:
    rotated = await api.call(lambda client: client.service_accounts.rotate_secret(account_id))
    return _secret_page(request, rotated, rotated=True)


@router.get("/service-accounts/{account_id}/disable")
async def confirm_disable_account(
    request: Request, api: pages.Api, account_id: uuid.UUID
) -> Response:
    found = await api.call(lambda client: client.service_accounts.get(account_id))
    return rendering.render(request, "admin/confirm.html", {"confirm": _disable_account(found)})


@router.post("/service-accounts/{account_id}/disable")
async def disable_account(api: pages.Api, account_id: uuid.UUID) -> Response:
    await api.call(lambda client: client.service_accounts.disable(account_id))
    return RedirectResponse(f"/service-accounts/{account_id}?done=disabled", status_code=303)


@router.post("/service-accounts/{account_id}/enable")
async def enable_account(api: pages.Api, account_id: uuid.UUID) -> Response:
    await api.call(lambda client: client.service_accounts.enable(account_id))
    return RedirectResponse(f"/service-accounts/{account_id}?done=enabled", status_code=303)
