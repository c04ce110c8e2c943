"""The jobs pages: the caller's jobs (an admin's: everyone's), a page at a time.

The pattern of every page group: a router, a `PAGES` naming it and its navigation link,
routes that call the APIs through `pages.Api` and answer with `rendering.render`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from console_service import pages, rendering
from libs import scopes

router = APIRouter(include_in_schema=False)
PAGES = pages.PageGroup(
    router=router, nav=(pages.NavLink("Jobs", "/jobs", order=10, scope=scopes.JOBS_READ),)
)
PAGE_SIZE = 25


@router.get("/jobs", dependencies=[pages.requires(scopes.JOBS_READ)])
async def list_jobs(request: Request, api: pages.Api, cursor: pages.Cursor = None) -> HTMLResponse:
    page = await api.call(lambda client: client.jobs.list(limit=PAGE_SIZE, cursor=cursor))
    return rendering.render(
        request,
        "jobs/list.html",
        {"jobs": page.items, "next_cursor": page.next_cursor, "cursor": cursor},
        fragment="jobs/_table.html",
    )
