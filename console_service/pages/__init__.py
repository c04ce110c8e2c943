"""The console's pages: one module per page group, each with its templates in
`templates/<group>/`, found here by `discover`.

A page module defines `router` (an `APIRouter(include_in_schema=False)`) and `PAGES`, a
`PageGroup` naming that router and the navigation links it adds. Nothing else registers it:
a new module in this package with a `PAGES` is served and linked. Navigation is ordered by
`NavLink.order` (Jobs 10, Executions 20, Dead letters 30, Webhook secret 40; the admin pages
Nodes 50, Users 60, Service accounts 70) and shows a link only to an account whose scopes
include the link's `scope`.

What a page route declares (see `jobs.py`, the pattern):

    @router.get("/jobs", dependencies=[pages.requires(scopes.JOBS_READ)])
    async def jobs(request: Request, api: pages.Api, cursor: pages.Cursor = None):
        page = await api.call(lambda c: c.jobs.list(cursor=cursor))
        return rendering.render(request, "jobs/list.html", {"page": page})

- `pages.Api`: the one way to call the APIs (`platform_api.Api.call`); it requires a session.
- `pages.SignedIn`: the session, when a route needs the account itself (`me.email`, `me.can`).
- `pages.requires(scope)`: the page answers 404 to an account without `scope`, as the
  admin pages do (`scopes.USERS_ADMIN`).
- A POST route that declares either is refused (403) unless it carries the session's CSRF
  token: forms put `{{ forms.csrf() }}` in, htmx requests get the header from console.js.
- An API error a page does not catch becomes an error page (`rendering`); a form catches
  `scheduler_client.errors.InvalidRequest` and shows `rendering.field_errors(exc)` beside
  its fields.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from console_service import errors, platform_api, sessions

SignedIn = Annotated[sessions.SignedIn, Depends(sessions.current)]
Api = Annotated[platform_api.Api, Depends(platform_api.for_request)]
CURSOR_MAX_LENGTH = 1_000
# The `cursor` query parameter of a list page: the `nextCursor` of the page before.
Cursor = Annotated[str | None, Query(max_length=CURSOR_MAX_LENGTH)]


@dataclass(frozen=True)
class NavLink:
    label: str
    path: str
    order: int
    scope: str | None = None  # shown only to accounts holding it; None: to everyone signed in


@dataclass(frozen=True)
class PageGroup:
    router: APIRouter
    nav: Sequence[NavLink] = field(default_factory=tuple)


def requires(scope: str) -> object:
    """A route dependency: 404 for an account without `scope` (the page does not exist for
    it, as an admin page does not for a user)."""

    async def check(signed_in: SignedIn) -> None:
        if not signed_in.can(scope):
            raise errors.PageNotFound(scope)

    return Depends(check)


def discover() -> list[PageGroup]:
    """The `PAGES` of every module of this package, in module name order."""
    groups = []
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        page_module = importlib.import_module(f"{__name__}.{module.name}")
        group = getattr(page_module, "PAGES", None)
        if isinstance(group, PageGroup):
            groups.append(group)
    return groups


def navigation(groups: Sequence[PageGroup]) -> list[NavLink]:
    return sorted((link for group in groups for link in group.nav), key=lambda link: link.order)
