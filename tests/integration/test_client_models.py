"""The client's models against the OpenAPI documents the services publish: every component
schema has a client model (or is named below as one no client reads), and each model has the
schema's fields, by JSON name, required where the schema requires them, with the same enum
values. A field added, removed or renamed on either side fails here, whichever branch made it.
"""

from __future__ import annotations

import enum
import types
import typing
from typing import Any

import pytest
from pydantic import BaseModel
from test_openapi_casing import published_document

from scheduler_client import models

CLIENT_MODELS: dict[str, dict[str, type[BaseModel]]] = {
    "job_service": {
        "BatchItemResult": models.BatchItemResult,
        "CalendarSchedule": models.CalendarSchedule,
        "CronSchedule": models.CronSchedule,
        "DeadLetter": models.DeadLetter,
        "DeadLetterPage": models.Page[models.DeadLetter],
        "DeadLetterReplay": models.DeadLetterReplay,
        "Execution": models.Execution,
        "ExecutionPage": models.Page[models.Execution],
        "FieldError": models.FieldError,
        "FixedDelaySchedule": models.FixedDelaySchedule,
        "FixedRateSchedule": models.FixedRateSchedule,
        "HttpPayload": models.HttpPayload,
        "Job": models.Job,
        "JobBatchCreate": models.JobBatchCreate,
        "JobBatchResult": models.JobBatchResult,
        "JobCreate": models.JobCreate,
        "JobPage": models.Page[models.Job],
        "JobPatch": models.JobPatch,
        "JobType": models.JobType,
        "JobTypeList": models.ItemList[models.JobType],
        "KafkaPayload": models.KafkaPayload,
        "LogPayload": models.LogPayload,
        "Node": models.Node,
        "NodeList": models.ItemList[models.Node],
        "OnceSchedule": models.OnceSchedule,
        "Problem": models.Problem,
        "RetryPolicy": models.RetryPolicy,
        "SchedulePreview": models.SchedulePreview,
        "SchedulePreviewRequest": models.SchedulePreviewRequest,
        "WebhookSecret": models.WebhookSecret,
        "WebhookSecretRotation": models.WebhookSecretRotation,
    },
    "user_service": {
        "PasswordChange": models.PasswordChange,
        "ProfileUpdate": models.ProfileUpdate,
        "Registration": models.Registration,
        "RegistrationAccepted": models.RegistrationAccepted,
        "RoleUpdate": models.RoleUpdate,
        "ServiceAccount": models.ServiceAccount,
        "ServiceAccountCreation": models.ServiceAccountCreation,
        "ServiceAccountPage": models.Page[models.ServiceAccount],
        "ServiceAccountWithSecret": models.ServiceAccountWithSecret,
        "User": models.User,
        "UserPage": models.Page[models.User],
    },
    "auth_service": {
        "ServerMetadata": models.ServerMetadata,
        "TokenResponse": models.TokenResponse,
    },
}
CLIENT_ENUMS: dict[str, type[enum.Enum]] = {
    "JobStatus": models.JobStatus,
    "ExecutionStatus": models.ExecutionStatus,
    "MisfirePolicy": models.MisfirePolicy,
    "Role": models.Role,
}
# Components no client reads: any JSON value (an http payload's body), and FastAPI's own
# validation error, which the services never answer (theirs is a problem document).
NOT_MODELLED = frozenset({"JsonValue", "HTTPValidationError", "ValidationError"})
CASES = [(service, name) for service, named in CLIENT_MODELS.items() for name in named]


@pytest.fixture(scope="module")
async def components() -> dict[str, dict[str, Any]]:
    return {
        service: (await published_document(service))["components"]["schemas"]
        for service in CLIENT_MODELS
    }


def _ref(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return components[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _schema_values(schema: dict[str, Any], components: dict[str, Any]) -> set[Any] | None:
    """The values an enum-like schema allows (enum, const, or a union of them), else None."""
    schema = _ref(schema, components)
    if "enum" in schema:
        return set(schema["enum"])
    if "const" in schema:
        return {schema["const"]}
    options = [
        _schema_values(option, components)
        for option in schema.get("anyOf", []) + schema.get("oneOf", [])
        if option.get("type") != "null"
    ]
    if options and all(values is not None for values in options):
        return set().union(*options)
    return None


def _client_values(annotation: Any) -> set[Any] | None:
    """The values a field's annotation names (Literal or enum members), else None."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return set(typing.get_args(annotation))
    if origin is typing.Annotated:
        return _client_values(typing.get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return {member.value for member in annotation}
    if origin in (typing.Union, types.UnionType):
        named = [_client_values(arg) for arg in typing.get_args(annotation)]
        found = [values for values in named if values is not None]
        return set().union(*found) if found else None
    return None


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    return {field.alias or name: field for name, field in model.model_fields.items()}


@pytest.mark.parametrize("service", sorted(CLIENT_MODELS))
async def test_every_schema_of_the_service_has_a_client_model(components, service):
    published = set(components[service])
    modelled = set(CLIENT_MODELS[service]) | (set(CLIENT_ENUMS) & published)

    assert published - NOT_MODELLED == modelled


@pytest.mark.parametrize(("service", "name"), CASES)
async def test_the_client_model_has_the_schemas_fields(components, service, name):
    schema = components[service][name]
    fields = _fields(CLIENT_MODELS[service][name])

    assert set(fields) == set(schema.get("properties", {}))
    assert {alias for alias, f in fields.items() if f.is_required()} == set(
        schema.get("required", [])
    )
    for alias, field in fields.items():
        published = _schema_values(schema["properties"][alias], components[service])
        if published is not None:
            assert _client_values(field.annotation) == published, alias


@pytest.mark.parametrize("name", sorted(CLIENT_ENUMS))
async def test_the_client_enum_has_the_schemas_values(components, name):
    [schema] = [named[name] for named in components.values() if name in named]

    assert {member.value for member in CLIENT_ENUMS[name]} == set(schema["enum"])


def test_every_client_model_stands_for_a_schema():
    modelled = {
        typing.get_origin(model) or model
        for named in CLIENT_MODELS.values()
        for model in named.values()
    }
    public = {
        value
        for name, value in vars(models).items()
        if isinstance(value, type)
        and issubclass(value, models.Model)
        and not name.startswith("_")
        and value is not models.Model
    }

    assert public - modelled - {models.Page, models.ItemList} == set()
