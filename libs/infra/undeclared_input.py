"""Refuses input an operation does not declare: a query parameter it does not take, or a body
sent to an operation that takes none. Both get a 422 naming them, as an unknown body field
does (`libs.contracts.schemas.StrictModel`): `GET /v1/jobs?ownerId=x` silently listing every job, or
a body sent to `:pause` silently dropped, would let a typo or a wrong guess look like success.

`refuse_undeclared_input` is a dependency of every route of a service's app (`libs.infra.web`); it
runs before the route's other dependencies, so an unknown parameter is named even to a caller
without a token (the OpenAPI document, which lists every parameter, is public too). What a
route declares is read from its FastAPI dependencies once. An empty body and an empty JSON
object (`{}`, which some clients send with every POST) carry nothing and pass.

An operation that must tolerate what it does not know, as the OAuth 2.0 token endpoint must
(RFC 6749 section 3.2: "MUST ignore unrecognized request parameters"), says so with
`IGNORES_UNKNOWN_PARAMETERS` in its `openapi_extra`; one that reads its body itself documents
that body as `requestBody` there, and is taken to accept one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from libs.contracts import problems

_IGNORES = "x-ignores-unknown-parameters"
IGNORES_UNKNOWN_PARAMETERS = {_IGNORES: True}
_EMPTY_BODIES = frozenset({b"", b"{}"})
_CACHED = "_declared_input"


class UndeclaredInput(problems.Problem):
    status = 422
    slug = "validation-failed"
    title = "The request is not valid"


@dataclass(frozen=True)
class Declared:
    query: frozenset[str]  # the query parameters the operation takes
    body: bool  # whether it takes a body
    strict: bool  # whether other query parameters are refused


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for dependency in dependant.dependencies:
        yield from _dependants(dependency)


def declared(route: APIRoute) -> Declared:
    """What `route` declares, worked out on its first request and kept on the route (routes
    compare by value, so they cannot key a cache)."""
    known = route.__dict__.get(_CACHED)
    if known is None:
        known = route.__dict__[_CACHED] = _declared(route)
    return known


def _declared(route: APIRoute) -> Declared:
    parts = list(_dependants(route.dependant))
    extra = route.openapi_extra or {}
    return Declared(
        query=frozenset(field.alias for part in parts for field in part.query_params),
        body=any(part.body_params for part in parts) or "requestBody" in extra,
        strict=not extra.get(_IGNORES, False),
    )


def _error(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message, "code": "extra_forbidden"}


async def refuse_undeclared_input(request: Request) -> None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not route.include_in_schema:
        return  # the probes, metrics and docs pages: not operations of the API
    takes = declared(route)
    errors = []
    if takes.strict:
        names = ", ".join(sorted(takes.query)) or "none"
        unknown = sorted({name for name in request.query_params if name not in takes.query})
        errors = [
            _error(f"query.{name}", f"unknown query parameter (this operation takes: {names})")
            for name in unknown
        ]
    if not takes.body and (await request.body()).strip() not in _EMPTY_BODIES:
        errors.append(_error("body", "this operation takes no request body"))
    if errors:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise UndeclaredInput(detail, errors=errors)
