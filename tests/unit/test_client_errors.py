"""Problem documents become the client's exceptions: every problem type the platform defines
is mapped (a new one fails here until it is), each to a class under its status's class, and
the exception carries what the answer said."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

# Imported for the `Problem` subclasses they define.
import auth_service.errors  # noqa: F401
import job_service.errors  # noqa: F401
import user_service.errors  # noqa: F401
from libs.contracts import problems
from scheduler_client import errors, models

# Problem types rendered without a `Problem` subclass (libs.contracts.problems and libs.infra.web).
RENDERED_DIRECTLY = {
    **{slug: status for status, (slug, _) in problems._HTTP_TITLES.items()},
    "error": 500,  # any other status FastAPI raises
    "validation-failed": 422,
    "service-unavailable": 503,
    "internal-error": 500,
}


PLATFORM_PACKAGES = ("libs", "auth_service", "job_service", "user_service")


def _problem_classes() -> set[type[problems.Problem]]:
    """The platform's own subclasses: not those other tests define for their own apps."""
    found: set[type[problems.Problem]] = set()
    pending = [problems.Problem]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            if sub not in found:
                found.add(sub)
                pending.append(sub)
    return {cls for cls in found if cls.__module__.split(".")[0] in PLATFORM_PACKAGES}


def _platform_slugs() -> dict[str, int]:
    """Every problem type the platform answers, with its status."""
    slugs = {cls.slug: cls.status for cls in _problem_classes()}
    return {**slugs, **RENDERED_DIRECTLY}


def _status_class(status: int) -> type[errors.ApiError]:
    return errors.class_for(None, status)


def _answer(status: int, body: bytes | dict | None = None, **headers: str) -> httpx.Response:
    request = httpx.Request("GET", "http://jobs.test/v1/jobs/1")
    if isinstance(body, dict):
        return httpx.Response(status, json=body, headers=headers, request=request)
    return httpx.Response(status, content=body or b"", headers=headers, request=request)


@pytest.mark.parametrize(("slug", "status"), sorted(_platform_slugs().items()))
def test_every_problem_type_of_the_platform_is_mapped_under_its_status(slug, status):
    assert slug in errors.BY_SLUG or slug in errors.BY_STATUS_ONLY, (
        f"{slug}: give it a class in scheduler_client.errors.BY_SLUG, or list it in BY_STATUS_ONLY"
    )
    assert issubclass(errors.class_for(slug, status), _status_class(status))


def test_every_mapped_problem_type_is_one_the_platform_answers():
    known = set(_platform_slugs())

    assert set(errors.BY_SLUG) - known == set()
    assert errors.BY_STATUS_ONLY - known == set()


def test_the_exception_carries_what_the_problem_document_says():
    answer = _answer(
        412,
        {
            "type": "https://scheduler.dev/problems/stale-version",
            "title": "The job has changed since that version",
            "status": 412,
            "detail": "the job is at version 4; read it again and retry",
            "instance": "/v1/jobs/1",
            "currentVersion": 4,
        },
        **{"x-request-id": "req-1", "content-type": "application/problem+json"},
    )

    error = errors.from_response(answer)

    assert type(error) is errors.StaleVersion
    assert (error.status, error.slug, error.current_version) == (412, "stale-version", 4)
    assert error.title == "The job has changed since that version"
    assert error.instance == "/v1/jobs/1"
    assert error.extensions == {"currentVersion": 4}
    assert (error.errors, error.retry_after, error.request_id) == ([], None, "req-1")
    assert str(error) == (
        "412 The job has changed since that version: the job is at version 4; read it again "
        "and retry (request id req-1)"
    )


def test_field_errors_become_objects():
    answer = _answer(
        422,
        {
            "type": "https://scheduler.dev/problems/validation-failed",
            "title": "The request is not valid",
            "status": 422,
            "errors": [{"field": "body.name", "message": "too short", "code": "too_short"}],
        },
    )

    error = errors.from_response(answer)

    assert type(error) is errors.InvalidRequest
    assert error.errors == [
        models.FieldError(field="body.name", message="too short", code="too_short")
    ]


def test_retry_after_is_read_as_seconds_or_as_a_date():
    locked = {"type": "https://scheduler.dev/problems/oauth/login-locked", "title": "x"}

    error = errors.from_response(_answer(429, locked, **{"retry-after": "7"}))

    assert type(error) is errors.LoginLocked
    assert error.retry_after == 7.0
    now = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert errors.retry_after_s("Tue, 01 Jan 2030 12:00:30 GMT", now) == 30.0
    assert errors.retry_after_s("Tue, 01 Jan 2030 11:00:00 GMT", now) == 0.0
    assert errors.retry_after_s("soon", now) is None


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (409, {"type": "https://scheduler.dev/problems/new-kind", "title": "x"}, errors.Conflict),
        (404, {"type": "about:blank", "title": "Not Found"}, errors.NotFound),
        (418, {"title": "teapot"}, errors.ApiError),
        (502, b"<html>bad gateway</html>", errors.ServerError),
        (503, b"", errors.ServiceUnavailable),
        (401, [1, 2], errors.Unauthorized),
    ],
)
def test_an_unknown_or_missing_problem_type_falls_back_to_the_status(status, body, expected):
    content = body if isinstance(body, bytes | dict) else str(body).encode()

    error = errors.from_response(_answer(status, content))

    assert type(error) is expected
    assert error.status == status


def test_an_answer_without_a_document_is_named_by_its_status_line():
    error = errors.from_response(_answer(502, b"<html>bad gateway</html>"))

    assert (error.title, error.detail, error.type, error.slug) == ("Bad Gateway", None, None, None)
