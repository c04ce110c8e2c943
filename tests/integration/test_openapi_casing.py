"""Every name a client of the platform reads or writes is camelCase: schema properties,
parameters and the keys of every example, in the OpenAPI document each service publishes
(header names such as `Idempotency-Key` have no underscore either: proxies drop such headers).
The one exemption is the OAuth endpoints of the auth service, whose names the RFCs fix
(`auth_service.api.OAUTH_OPERATIONS` and `OAUTH_SCHEMAS`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import auth_service.api
import auth_service.settings
import executor_service.app
import executor_service.settings
import job_service.api
import job_service.settings
import scheduler_service.app
import scheduler_service.settings
import user_service.api
import user_service.settings

# Nothing is connected to: building an app and answering /openapi.json needs no resource.
DATABASE_URL = "postgresql+asyncpg://nobody@127.0.0.1:1/none"
TRUST = {"auth_issuer": "https://auth.casing.test", "auth_jwks_url": "http://127.0.0.1:1/jwks"}
KAFKA = {"kafka_bootstrap_servers": "127.0.0.1:1"}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _apps() -> dict[str, Any]:
    return {
        "user_service": user_service.api.create_app(
            user_service.settings.Settings(database_url=DATABASE_URL, **TRUST)
        ),
        # Development: the signing key may be generated and kept unencrypted.
        "auth_service": auth_service.api.create_app(
            auth_service.settings.Settings(
                database_url=DATABASE_URL,
                auth_issuer=TRUST["auth_issuer"],
                environment="development",
            )
        ),
        "job_service": job_service.api.create_app(
            job_service.settings.Settings(database_url=DATABASE_URL, **TRUST)
        ),
        "scheduler_service": scheduler_service.app.create_app(
            scheduler_service.settings.Settings(database_url=DATABASE_URL, **KAFKA)
        ),
        "executor_service": executor_service.app.create_app(
            executor_service.settings.Settings(database_url=DATABASE_URL, **KAFKA)
        ),
    }


SERVICES = sorted(_apps())


async def published_document(service: str) -> dict[str, Any]:
    """The OpenAPI document `service` answers at /openapi.json."""
    app = _apps()[service]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=f"http://{service}"
    ) as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200, response.text
    return response.json()


def _example_names(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """(where, key) of every key of an example, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{where}.{key}", key
            yield from _example_names(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _example_names(item, f"{where}[{index}]")


def _names(node: Any, where: str) -> Iterator[tuple[str, str]]:
    """(where, name) of every schema property, parameter and example key under `node`."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from _names(item, f"{where}[{index}]")
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        here = f"{where}/{key}"
        if key == "properties" and isinstance(value, dict):
            for name, schema in value.items():
                yield f"{here}/{name}", name
                yield from _names(schema, f"{here}/{name}")
        elif key == "parameters" and isinstance(value, list):
            for parameter in value:
                yield f"{here}/{parameter['name']}", parameter["name"]
                yield from _names(parameter, f"{here}/{parameter['name']}")
        elif key == "example":
            yield from _example_names(value, here)
        elif key == "examples" and isinstance(value, list):  # a schema's (JSON Schema)
            yield from _example_names(value, here)
        elif key == "examples" and isinstance(value, dict):  # a media type's: name -> Example
            for name, example in value.items():
                yield from _example_names(example.get("value"), f"{here}/{name}")
        else:
            yield from _names(value, here)


def not_camel_case(document: dict[str, Any], *, service: str) -> list[str]:
    """Where `document` has a name with `_`, the OAuth exemption of the auth service aside."""
    exempt_operations = auth_service.api.OAUTH_OPERATIONS if service == "auth_service" else set()
    exempt_schemas = auth_service.api.OAUTH_SCHEMAS if service == "auth_service" else set()
    found: list[tuple[str, str]] = []
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if (method, path) in exempt_operations:
                continue
            scope = operation if method in HTTP_METHODS else {method: operation}
            found += _names(scope, f"{method.upper()} {path}")
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        if name not in exempt_schemas:
            found += _names(schema, f"#/components/schemas/{name}")
    return [where for where, name in found if "_" in name]


@pytest.mark.parametrize("service", SERVICES)
async def test_every_name_in_the_published_document_is_camel_case(service):
    document = await published_document(service)

    assert not_camel_case(document, service=service) == []


async def test_the_oauth_exemption_names_what_the_auth_service_publishes_and_only_that():
    document = await published_document("auth_service")
    operations = {(method, path) for path, item in document["paths"].items() for method in item}

    assert auth_service.api.OAUTH_OPERATIONS <= operations
    assert auth_service.api.OAUTH_SCHEMAS <= set(document["components"]["schemas"])
    # The JWKS is not exempt: RFC 7517's names have no underscore.
    assert ("get", auth_service.api.JWKS_PATH) not in auth_service.api.OAUTH_OPERATIONS
    # Without the exemption, the RFCs' names are found: the walk does look at them.
    token = {"paths": {auth_service.api.TOKEN_PATH: document["paths"][auth_service.api.TOKEN_PATH]}}
    schemas = {"components": document["components"]}
    assert any("grant_type" in where for where in not_camel_case(token, service="other"))
    assert any("access_token" in where for where in not_camel_case(schemas, service="other"))


def test_the_walk_finds_names_in_properties_parameters_and_examples():
    document = {
        "paths": {
            "/v1/things/{thing_id}": {
                "parameters": [{"name": "thing_id", "in": "path"}],
                "get": {
                    "parameters": [
                        {"name": "page_size", "in": "query"},
                        {"name": "If-Match", "in": "header"},
                        {"name": "x_trace", "in": "header"},
                    ],
                    "responses": {
                        "200": {
                            "content": {
                                "application/json": {
                                    "examples": {"one": {"value": {"a": [{"next_cursor": 1}]}}}
                                }
                            }
                        }
                    },
                },
            }
        },
        "components": {
            "schemas": {
                "Thing": {
                    "properties": {
                        "displayName": {"type": "string"},
                        "nested": {"items": {"properties": {"created_at": {}}}},
                    },
                    "examples": [{"labels": {"team_name": "x"}}],
                }
            }
        },
    }

    found = not_camel_case(document, service="other")

    assert [where.rsplit("/", 1)[-1].rsplit(".", 1)[-1] for where in found] == [
        "thing_id",
        "page_size",
        "x_trace",
        "next_cursor",
        "created_at",
        "team_name",
    ]
