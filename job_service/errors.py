"""The job service's errors, named by meaning; `libs.contracts.problems` renders them (RFC 9457).

Extension members of the problem documents are camelCase, as every key of the API.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from libs.contracts import problems


class InvalidRequest(problems.Problem):
    """Fields break rules that are not about their shape (a payload against its type, a
    schedule that never fires, a cursor this service did not issue). Rendered like FastAPI's
    validation errors: 422 with `errors` naming each field, so a client handles both alike."""

    status = 422
    slug = "validation-failed"
    title = "The request is not valid"

    def __init__(self, errors: Sequence[tuple[str, str, str]]):
        rendered = [{"field": f, "message": m, "code": c} for f, m, c in errors]
        super().__init__("; ".join(f"{f}: {m}" for f, m, _ in errors), errors=rendered)
        self.errors = rendered

    @classmethod
    def field(cls, field: str, message: str, code: str) -> InvalidRequest:
        return cls([(field, message, code)])


def invalid_cursor() -> InvalidRequest:
    return InvalidRequest.field(
        "query.cursor", "the cursor is not one this service issued for this sort", "cursor"
    )


class JobNotFound(problems.Problem):
    # Also the answer for another owner's job: whether an id exists is not revealed.
    status = 404
    slug = "job-not-found"
    title = "No such job"


class ExecutionNotFound(problems.Problem):
    status = 404
    slug = "execution-not-found"
    title = "No such execution"


class DeadLetterNotFound(problems.Problem):
    status = 404
    slug = "dead-letter-not-found"
    title = "No such dead letter"


class JobStateConflict(problems.Problem):
    """The job's state does not allow the request (resume a running job, update a finished
    one); `currentStatus` says which state it is in."""

    status = 409
    slug = "job-state-conflict"
    title = "The job's state does not allow this"

    def __init__(self, detail: str, current_status: str, **extensions: Any):
        super().__init__(detail, currentStatus=current_status, **extensions)


class AlreadyReplayed(problems.Problem):
    status = 409
    slug = "dead-letter-already-replayed"
    title = "The dead letter was already replayed"


class StaleVersion(problems.Problem):
    """`If-Match` names a version the job no longer has; the current one is in `ETag`."""

    status = 412
    slug = "stale-version"
    title = "The job has changed since that version"

    def __init__(self, current_version: int):
        super().__init__(
            f"the job is at version {current_version}; read it again and retry",
            headers={"ETag": f'"{current_version}"'},
            currentVersion=current_version,
        )


class PreconditionRequired(problems.Problem):
    status = 428
    slug = "precondition-required"
    title = "If-Match is required"

    def __init__(self) -> None:
        super().__init__(
            'an update must say which version it changes: send If-Match: "<version>" with the '
            "ETag of the job as read"
        )


class IdempotencyKeyReused(problems.Problem):
    """The key was used before with a different request: another body, or a single creation's
    key sent with a batch or the reverse (IETF draft `draft-ietf-httpapi-idempotency-key-header`:
    422). `errors` names the header, as every 422 of the API names its field."""

    status = 422
    slug = "idempotency-key-reused"
    title = "The Idempotency-Key was used with another request"

    def __init__(self) -> None:
        message = (
            "this Idempotency-Key was already used with a different request; use a new key "
            "for a new request"
        )
        super().__init__(
            message,
            errors=[
                {
                    "field": "header.Idempotency-Key",
                    "message": message,
                    "code": "idempotency_key_reused",
                }
            ],
        )


class IdempotentJobDeleted(problems.Problem):
    status = 409
    slug = "idempotent-job-deleted"
    title = "The job created with this Idempotency-Key was deleted"


class SubjectNotAnId(problems.Problem):
    """A token whose subject is not an account id: it cannot own jobs."""

    status = 403
    slug = "subject-not-an-id"
    title = "The token's subject cannot own jobs"
