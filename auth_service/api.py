"""HTTP routes of the auth service: the token endpoint (RFC 6749), revocation (RFC 7009), the
JWKS and the authorization-server metadata (RFC 8414)."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from auth_service import errors, keys, schemas, service
from auth_service.settings import Settings
from libs.infra import resources, undeclared_input, web
from libs.security import scopes

TOKEN_PATH = "/oauth/token"  # noqa: S105 (a path, not a secret)
REVOCATION_PATH = "/oauth/revoke"
JWKS_PATH = "/.well-known/jwks.json"
METADATA_PATH = "/.well-known/oauth-authorization-server"
GRANT_TYPES = ("password", "client_credentials", "refresh_token")

# The operations whose parameter and member names the OAuth RFCs fix, snake_case included: the
# token endpoint (RFC 6749: `grant_type`, `access_token`, `expires_in`, `error_description`...),
# revocation (RFC 7009: `token_type_hint`) and the server metadata (RFC 8414: `jwks_uri`...),
# with the schemas only they use. Every OAuth client library expects these names. Everything
# else the platform publishes is camelCase; the JWKS keeps RFC 7517's names, which have no
# underscore. tests/integration/test_openapi_casing.py skips exactly these.
OAUTH_OPERATIONS = frozenset(
    {("post", TOKEN_PATH), ("post", REVOCATION_PATH), ("get", METADATA_PATH)}
)
OAUTH_SCHEMAS = frozenset({"TokenResponse", "ServerMetadata"})


def _form_body(*fields: str) -> dict[str, Any]:
    """OpenAPI for a form body the route reads itself (see `schemas.read_form`)."""
    properties = {name: {"type": "string"} for name in fields}
    schema = {"type": "object", "properties": properties}
    body = {"required": True, "content": {schemas.FORM_MEDIA_TYPE: {"schema": schema}}}
    # RFC 6749 section 3.2 (and RFC 7009, by reference): unknown parameters are ignored.
    return {"requestBody": body, **undeclared_input.IGNORES_UNKNOWN_PARAMETERS}


router = APIRouter()


@router.post(
    TOKEN_PATH,
    openapi_extra=_form_body(
        "grant_type", "username", "password", "refresh_token", "scope", "client_id",
        "client_secret",
    ),
    responses={200: {"model": schemas.TokenResponse, "description": "The tokens issued."}},
)  # fmt: skip
async def token(request: Request) -> JSONResponse:
    """Issue tokens: password, client-credentials and refresh-token grants."""
    form = await schemas.read_form(request)
    grant = schemas.token_request(form, request.headers.get("authorization"))
    address = request.client.host if request.client else None
    issued = await service.grant(request.app.state.identity, grant, address)
    body = schemas.TokenResponse(
        access_token=issued.access_token,
        expires_in=issued.expires_in,
        scope=issued.scope,
        refresh_token=issued.refresh_token,
    )
    return JSONResponse(body.model_dump(exclude_none=True), headers=errors.NO_STORE)


@router.post(REVOCATION_PATH, openapi_extra=_form_body("token", "token_type_hint"))
async def revoke(request: Request) -> Response:
    """Revoke a refresh token and its family (logout); 200 even for an unknown token."""
    form = await schemas.read_form(request)
    await service.revoke(request.app.state.identity, schemas.revocation_request(form))
    return Response(status_code=200, headers=errors.NO_STORE)


@router.get(JWKS_PATH)
async def jwks(request: Request) -> JSONResponse:
    """The public keys that verify access tokens: the active and the previous ones."""
    identity: service.Identity = request.app.state.identity
    published = await identity.keys.published()
    max_age = int(identity.settings.auth_jwks_refresh_min_interval_s)
    return JSONResponse(
        {"keys": published}, headers={"Cache-Control": f"public, max-age={max_age}"}
    )


@router.get(METADATA_PATH)
async def metadata(request: Request) -> schemas.ServerMetadata:
    """Where the endpoints are and what they support (RFC 8414)."""
    settings: Settings = request.app.state.settings
    issuer = settings.auth_issuer.rstrip("/")
    return schemas.ServerMetadata(
        issuer=settings.auth_issuer,
        token_endpoint=issuer + TOKEN_PATH,
        revocation_endpoint=issuer + REVOCATION_PATH,
        jwks_uri=issuer + JWKS_PATH,
        grant_types_supported=list(GRANT_TYPES),
        scopes_supported=sorted(scopes.ALL),
        token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
        revocation_endpoint_auth_methods_supported=["none"],
    )


def create_app(settings: Settings) -> FastAPI:
    """The auth service's app. Raises `ConfigError` for settings that cannot work together
    (unencrypted keys in production, an unreadable key file) before anything starts."""
    configured = keys.load_configured(settings)
    return web.create_app(
        settings,
        title="Auth service",
        lifespan=lambda app: resources.all_of(
            app,
            partial(resources.database, settings=settings),
            partial(service.identity_resource, settings=settings, configured=configured),
        ),
        routers=[router],
    )
