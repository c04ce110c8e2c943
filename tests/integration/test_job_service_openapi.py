"""The job service's OpenAPI document: complete (every route, its scopes, its error answers,
examples on every model) and true (schemathesis generates requests from it against the running
service on a real database: no 5xx, every answer as documented)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import hypothesis
import pytest
import schemathesis
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, given
from job_service_support import ALL_JOB_SCOPES, running
from schemathesis import checks as generic_checks
from schemathesis.specs.openapi import checks as openapi_checks

from job_service import api, schemas
from job_service.settings import Settings
from libs.contracts import problems

# (method, path) -> the scope its token needs
OPERATIONS = {
    ("post", "/v1/jobs"): "jobs:write",
    ("post", "/v1/jobs:batch"): "jobs:write",
    ("get", "/v1/jobs"): "jobs:read",
    ("get", "/v1/jobs/{jobId}"): "jobs:read",
    ("patch", "/v1/jobs/{jobId}"): "jobs:write",
    ("delete", "/v1/jobs/{jobId}"): "jobs:write",
    ("post", "/v1/jobs/{jobId}:pause"): "jobs:write",
    ("post", "/v1/jobs/{jobId}:resume"): "jobs:write",
    ("post", "/v1/jobs/{jobId}:cancel"): "jobs:write",
    ("post", "/v1/jobs/{jobId}:run"): "jobs:run",
    ("get", "/v1/jobs/{jobId}/executions"): "jobs:read",
    ("get", "/v1/executions"): "jobs:read",
    ("get", "/v1/executions/{executionId}"): "jobs:read",
    ("get", "/v1/dead-letters"): "jobs:read",
    ("post", "/v1/dead-letters/{deadLetterId}:replay"): "jobs:run",
    ("post", "/v1/schedules:preview"): "jobs:read",
    ("get", "/v1/job-types"): "jobs:read",
    ("get", "/v1/nodes"): "users:admin",
    ("get", "/v1/webhook-secret"): "jobs:write",
    ("post", "/v1/webhook-secret:rotate"): "jobs:write",
}
EXAMPLES_PER_OPERATION = 30  # per pass: about 1200 requests, well under a minute


@pytest.fixture
async def jobs(database_url, token_issuer):
    async with running(database_url, token_issuer) as service:
        yield service


@pytest.fixture
async def document(jobs) -> dict[str, Any]:
    response = await jobs.client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


def _resolve(document: dict[str, Any], ref: str) -> dict[str, Any]:
    assert ref.startswith("#/components/schemas/"), ref
    return document["components"]["schemas"][ref.rsplit("/", 1)[1]]


async def test_every_route_is_documented_with_its_scope(document):
    operations = _operations(document)

    assert set(operations) == set(OPERATIONS)
    served = {
        (method.lower(), route.path)
        for router in (
            api.jobs_router,
            api.history_router,
            api.tools_router,
            api.nodes_router,
            api.webhooks_router,
        )
        for route in router.routes
        if isinstance(route, APIRoute) and route.include_in_schema
        for method in route.methods
    }
    assert served == set(OPERATIONS)
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    for key, scope in OPERATIONS.items():
        assert operations[key]["security"] == [{"bearerAuth": [scope]}], key


async def test_every_operation_has_a_summary_a_tag_and_problem_answers(document):
    for key, operation in _operations(document).items():
        assert operation.get("summary") and operation.get("tags"), key
        responses = operation["responses"]
        for status in ("401", "403", "422"):
            content = responses[status]["content"]
            assert list(content) == [problems.MEDIA_TYPE], (key, status)
            assert _resolve(document, content[problems.MEDIA_TYPE]["schema"]["$ref"])
        success = [s for s in responses if s.startswith("2")]
        assert len(success) == 1, key
        if "{jobId}" in key[1] and key[1].startswith("/v1/jobs/"):
            assert "404" in responses, key
    patch = _operations(document)[("patch", "/v1/jobs/{jobId}")]
    assert {"404", "409", "412", "413", "428"} <= set(patch["responses"])
    assert "If-Match" in {p["name"] for p in patch["parameters"]}
    create = _operations(document)[("post", "/v1/jobs")]
    assert "Idempotency-Key" in {p["name"] for p in create["parameters"]}
    assert "ETag" in create["responses"]["201"]["headers"]
    batch = _operations(document)[("post", "/v1/jobs:batch")]
    assert "Idempotency-Key" in {p["name"] for p in batch["parameters"]}
    assert "Idempotent-Replayed" in batch["description"]


async def test_every_request_and_response_model_has_an_example(document):
    models: set[str] = set()
    for operation in _operations(document).values():
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body:
            models.add(body["schema"]["$ref"])
        for response in operation["responses"].values():
            for content in response.get("content", {}).values():
                if "$ref" in content.get("schema", {}):
                    models.add(content["schema"]["$ref"])
    assert len(models) >= 12
    for ref in models:
        assert _resolve(document, ref).get("examples"), ref


def test_the_response_examples_are_valid_answers():
    answers = [
        schemas.Job, schemas.JobPage, schemas.JobBatchResult, schemas.BatchItemResult,
        schemas.Execution, schemas.ExecutionPage, schemas.DeadLetter, schemas.DeadLetterPage,
        schemas.DeadLetterReplay, schemas.SchedulePreview, schemas.JobTypeList, schemas.Problem,
        schemas.WebhookSecret,
    ]  # fmt: skip
    for model in answers:
        for example in model.model_json_schema()["examples"]:
            parsed = model.model_validate(example)
            assert parsed.model_dump(mode="json", exclude_unset=True) == example, model


async def test_the_request_examples_are_accepted(jobs, document):
    create = _resolve(document, "#/components/schemas/JobCreate")["examples"][0]
    batch = _resolve(document, "#/components/schemas/JobBatchCreate")["examples"][0]
    preview = _resolve(document, "#/components/schemas/SchedulePreviewRequest")["examples"][0]

    created = await jobs.post("/v1/jobs", json=create)
    batched = await jobs.post("/v1/jobs:batch", json=batch)
    previewed = await jobs.post("/v1/schedules:preview", json=preview)

    assert created.status_code == 201, created.text
    assert batched.json()["created"] == len(batch["jobs"])
    assert previewed.status_code == 200
    for example in _resolve(document, "#/components/schemas/JobPatch")["examples"]:
        job = await jobs.created()
        patched = await jobs.client.patch(
            f"/v1/jobs/{job['id']}", json=example, headers={**jobs.bearer(), "if-match": '"1"'}
        )
        assert patched.status_code == 200, patched.text


# --- schemathesis ------------------------------------------------------------------------------

CHECKS = [
    generic_checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
]


def _fuzz(
    schema: Any, base_url: str, headers: dict[str, str], job_ids: dict[str, str]
) -> tuple[list[str], dict[str, set[int]]]:
    """Run every operation's generated cases; returns the failures, described, and the
    statuses each operation answered (runs in a thread: the requests are synchronous, the
    service answers on the event loop).

    Three passes per operation: valid data, invalid data, and, for an operation on one job,
    valid data on a job that exists (`job_ids`, one per operation) with `If-Match: *`.
    """
    failures: list[str] = []
    statuses: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        modes = schemathesis.GenerationMode
        passes = [
            ("positive", operation.as_strategy(generation_mode=modes.POSITIVE)),
            ("negative", operation.as_strategy(generation_mode=modes.NEGATIVE)),
        ]
        if operation.label in job_ids:
            existing = operation.as_strategy(
                path_parameters={"jobId": job_ids[operation.label]}, headers={"If-Match": "*"}
            )
            passes.append(("existing job", existing))
        for name, strategy in passes:

            @hypothesis.settings(
                max_examples=EXAMPLES_PER_OPERATION,
                database=None,
                deadline=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy)
            def run(case: schemathesis.Case) -> None:
                response = case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)
                statuses.setdefault(case.operation.label, set()).add(response.status_code)

            try:
                run()
            # Every failure of every operation is reported at once. Schemathesis raises its
            # check failures as a BaseExceptionGroup.
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{operation.label} ({name}): {exc}")
    return failures, statuses


async def test_generated_requests_get_documented_answers_and_never_a_5xx(
    database_url, token_issuer, serve_app
):
    app = api.create_app(Settings(database_url=database_url, **token_issuer.settings()))
    schema = schemathesis.openapi.from_dict(app.openapi())
    owner = uuid.uuid4()
    # users:admin too, so that the admin-only operations (GET /v1/nodes) are exercised.
    every_scope = (*ALL_JOB_SCOPES, "users:admin")
    headers = {"authorization": f"Bearer {token_issuer.mint(str(owner), every_scope)}"}

    async with serve_app(app) as base_url:
        # One real job per operation on a job, so that generated requests reach past 404.
        async with running(database_url, token_issuer) as service:
            service.owner = owner
            job_ids = {
                f"{method.upper()} {path}": (await service.created())["id"]
                for method, path in OPERATIONS
                if "{jobId}" in path
            }
        failures, statuses = await asyncio.to_thread(_fuzz, schema, base_url, headers, job_ids)

    assert failures == [], "\n\n".join(failures)
    # Every operation was exercised past authentication (negative cases may mangle the
    # Authorization header too), and most of them succeeded at times.
    assert set(statuses) == {f"{m.upper()} {p}" for m, p in OPERATIONS}
    assert all(answered - {401, 403} for answered in statuses.values()), statuses
    successes = {label for label, answered in statuses.items() if answered & {200, 201, 204}}
    assert len(successes) >= 13, statuses
