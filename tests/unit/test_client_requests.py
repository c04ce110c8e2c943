"""The pure parts of the client: JSON names, request bodies, what each call sends, how
answers are read, and the grants `TokenAuth` chooses."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import httpx
import pydantic
import pytest

from libs.contracts import schemas
from scheduler_client import (
    ClientCredentials,
    Endpoints,
    PasswordLogin,
    TokenAuth,
    Tokens,
    errors,
    models,
    operations,
)

ENDPOINTS = Endpoints.local()
LOG_JOB = {
    "name": "n",
    "type": "log",
    "payload": {"message": "m"},
    "schedule": {"kind": "fixed_rate", "intervalSeconds": 60},
}


@pytest.mark.parametrize(
    ("name", "json_name"),
    [
        ("name", "name"),
        ("next_run_at", "nextRunAt"),
        ("timeout_s", "timeoutSeconds"),
        ("misfire_grace_s", "misfireGraceSeconds"),
        ("duration_s", "durationSeconds"),
        ("previous_valid_until", "previousValidUntil"),
        ("status", "status"),
        ("job_ids", "jobIds"),
    ],
)
def test_json_names_are_the_services_own(name, json_name):
    assert models.camel(name) == json_name
    assert models.camel(name) == schemas.camel(name)


def test_a_model_body_holds_the_fields_set_and_always_the_schedules_kind():
    job = models.JobCreate(
        name="n",
        type="log",
        payload=models.LogPayload(message="m"),
        schedule=models.FixedRateSchedule(interval_s=60),
        timeout_s=5,
    )

    assert models.body(job) == {
        "name": "n",
        "type": "log",
        "payload": {"message": "m"},
        "schedule": {"kind": "fixed_rate", "intervalSeconds": 60},
        "timeoutSeconds": 5,
    }
    assert models.body(models.JobPatch(description=None)) == {"description": None}
    assert models.body(models.JobPatch()) == {}


def test_a_mapping_body_is_sent_as_it_is():
    when = datetime(2030, 1, 1, tzinfo=UTC)
    job_id = uuid.uuid4()
    raw = {"schedule": {"kind": "once", "at": when}, "unknown": [job_id], "timeoutSeconds": 5}

    assert models.body(raw) == {
        "schedule": {"kind": "once", "at": "2030-01-01T00:00:00Z"},
        "unknown": [str(job_id)],
        "timeoutSeconds": 5,
    }
    # Inside a model too, a dict stays what the caller wrote, for the server to judge.
    inner = {"kind": "cron", "expression": "* * * * *", "newField": 1}
    job = models.JobCreate(name="n", type="t", payload={}, schedule=inner)
    assert models.body(job)["schedule"] == inner


def test_a_field_the_caller_misspells_is_refused_and_one_an_answer_adds_is_ignored():
    with pytest.raises(pydantic.ValidationError, match=r"unknown field.*timezon"):
        models.CronSchedule(expression="* * * * *", timezon="Europe/London")
    with pytest.raises(pydantic.ValidationError, match=r"unknown field.*retry_polcy"):
        models.JobPatch.model_validate({"retry_polcy": {}})
    models.JobPatch.model_validate({"retryPolicy": {}, "timeout_s": 3})  # either name

    answer = {"expression": "* * * * *", "jitterSeconds": 5}
    read = models.CronSchedule.model_validate(answer, context=models.ANSWER)
    assert read.expression == "* * * * *"


def test_an_answer_keeps_values_this_client_does_not_know():
    node = {
        "nodeId": "n",
        "service": "s",
        "hostname": "h",
        "pid": 1,
        "version": "v",
        "startedAt": "2030-01-01T00:00:00Z",
        "lastHeartbeatAt": "2030-01-01T00:00:00Z",
        "up": True,
        "zone": "eu-1",
    }
    assert models.Node.model_validate(node, context=models.ANSWER).node_id == "n"
    user = {
        "id": str(uuid.uuid4()),
        "email": "a@example.com",
        "displayName": None,
        "createdAt": "2030-01-01T00:00:00Z",
        "disabled": False,
        "lockedUntil": None,
    }
    assert models.User.model_validate({**user, "role": "admin"}).role is models.Role.ADMIN
    assert models.User.model_validate({**user, "role": "auditor"}).role == "auditor"


def test_a_refused_value_is_not_echoed_in_the_error():
    with pytest.raises(pydantic.ValidationError) as caught:
        models.TokenResponse.model_validate(
            {"access_token": "secret-token", "expires_in": "x", "scope": "s"}
        )
    assert "secret-token" not in str(caught.value)


def test_list_filters_become_the_apis_query_parameters():
    after = datetime(2030, 1, 1, tzinfo=UTC)
    job_id = uuid.uuid4()

    assert operations.list_jobs(status="PAUSED").params == (("status", "PAUSED"),)
    assert operations.list_jobs(
        status=[models.JobStatus.PAUSED, "FAILED"],
        label=("a:b", "c:d"),
        owner_id=job_id,
        sort="nextRunAt",
        limit=5,
        cursor="abc",
    ).params == (
        ("status", "PAUSED"),
        ("status", "FAILED"),
        ("label", "a:b"),
        ("label", "c:d"),
        ("ownerId", str(job_id)),
        ("sort", "nextRunAt"),
        ("limit", "5"),
        ("cursor", "abc"),
    )
    assert operations.list_executions(job_id=[job_id], created_after=after).params == (
        ("jobId", str(job_id)),
        ("createdAfter", "2030-01-01T00:00:00+00:00"),
    )
    assert operations.list_dead_letters(replayed=False).params == (("replayed", "false"),)
    assert operations.list_users().params == ()


def test_a_version_becomes_if_match():
    assert operations.update_job("1", {}, if_match=3).headers == {"If-Match": '"3"'}
    assert operations.job_action("1", "pause", if_match="*").headers == {"If-Match": "*"}
    assert operations.delete_job("1").headers == {}
    for wrong in ("3", True, 3.0):
        with pytest.raises(TypeError, match="if_match"):
            operations.job_action("1", "run", if_match=wrong)


def test_calls_name_their_service_path_and_headers():
    key = operations.create_job({"name": "n"}, idempotency_key="k-1")
    assert (key.service, key.method, key.path) == ("jobs", "POST", "/v1/jobs")
    assert key.headers == {"Idempotency-Key": "k-1"}
    batch = operations.create_jobs(
        [{"name": "a"}, models.JobCreate(**LOG_JOB)], idempotency_key="k"
    )
    assert (batch.path, batch.headers) == ("/v1/jobs:batch", {"Idempotency-Key": "k"})
    assert batch.json == {"jobs": [{"name": "a"}, LOG_JOB]}
    # An id is one path segment whatever it holds.
    assert operations.get_job("a/../b").path == "/v1/jobs/a%2F..%2Fb"
    assert operations.job_action(uuid.UUID(int=1), "run", if_match=None).path.endswith("0001:run")
    assert operations.rotate_webhook_secret().json == {}
    assert operations.rotate_webhook_secret(grace_s=0).json == {"graceSeconds": 0}
    assert operations.set_role("u", "admin").json == {"role": "admin"}
    preview = operations.preview_schedule(models.CronSchedule(expression="* * * * *"), count=3)
    assert preview.json == {"schedule": {"kind": "cron", "expression": "* * * * *"}, "count": 3}
    assert operations.preview_schedule({"kind": "once"}).json == {"schedule": {"kind": "once"}}
    register = operations.register(email="a@example.com", password="p", display_name="A")
    assert (register.service, register.authenticated) == ("users", False)
    assert register.json == {"email": "a@example.com", "password": "p", "displayName": "A"}
    revoke = operations.revoke("rt")
    assert (revoke.service, revoke.path, revoke.authenticated) == ("auth", "/oauth/revoke", False)
    assert revoke.form == {"token": "rt", "token_type_hint": "refresh_token"}


def _response(status: int, content: bytes) -> httpx.Response:
    return httpx.Response(status, content=content, request=httpx.Request("GET", "http://x/y"))


def test_an_answer_is_read_or_raised():
    call = operations.get_webhook_secret()
    secret = b'{"secret": "whsec_x", "createdAt": "2030-01-01T00:00:00Z", "rotatedAt": null, '
    secret += b'"previousValidUntil": null, "addedLater": 1}'

    assert operations.answer(call, _response(200, secret)).secret == "whsec_x"
    with pytest.raises(errors.UnexpectedAnswer, match="unexpected 200 answer"):
        operations.answer(call, _response(200, b"<html>"))
    with pytest.raises(errors.UnexpectedAnswer):
        operations.answer(call, _response(200, b'{"secret": 1}'))
    with pytest.raises(errors.NotFound):
        operations.answer(call, _response(404, b""))
    assert operations.answer(operations.delete_job("1"), _response(204, b"")) is None


def test_endpoints_name_each_services_base_url():
    assert ENDPOINTS.auth == "http://127.0.0.1:8002"
    assert Endpoints.local("10.0.0.1").jobs == "http://10.0.0.1:8000"
    single = Endpoints.single("https://scheduler.example.com/api/")
    assert single.url("users", "/v1/users/me") == "https://scheduler.example.com/api/v1/users/me"
    with pytest.raises(ValueError, match="not an http"):
        Endpoints.single("scheduler.example.com")


def _token_answer(refresh_token: str | None) -> models.TokenResponse:
    return models.TokenResponse(
        access_token="at", expires_in=900, scope="jobs:read", refresh_token=refresh_token
    )


def test_a_password_is_used_for_the_first_login_only():
    heard: list[Tokens] = []
    auth = TokenAuth(PasswordLogin("ann@example.com", "pw", "jobs:read"), ENDPOINTS,
                     on_tokens=heard.append)  # fmt: skip

    first = auth.grant()
    assert first.form == {
        "grant_type": "password",
        "username": "ann@example.com",
        "password": "pw",
        "scope": "jobs:read",
    }
    tokens = auth.install(_token_answer("rt-1"))
    assert heard == [tokens]
    assert auth.grant().form == {"grant_type": "refresh_token", "refresh_token": "rt-1"}
    # A refresh answered without a new refresh token keeps the old one (RFC 6749 section 6).
    assert auth.install(_token_answer(None)).refresh_token == "rt-1"
    auth.forget()
    with pytest.raises(errors.ClientError, match="log in again"):
        auth.grant()


def test_client_credentials_authenticate_with_http_basic_every_time():
    auth = TokenAuth(ClientCredentials("sa_1", "s3cret:+/"), ENDPOINTS)

    grant = auth.grant()
    auth.install(_token_answer(None))

    assert grant.form == {"grant_type": "client_credentials"}
    scheme, _, encoded = grant.headers["Authorization"].partition(" ")
    assert (scheme, base64.b64decode(encoded)) == ("Basic", b"sa_1:s3cret%3A%2B%2F")
    assert auth.grant().form == {"grant_type": "client_credentials"}


def test_saved_tokens_come_first_and_client_credentials_log_in_when_they_cannot_be_refreshed():
    saved = Tokens("at-0", None, datetime(2030, 1, 1, tzinfo=UTC), "jobs:read")
    auth = TokenAuth(ClientCredentials("sa_1", "s3cret"), ENDPOINTS, tokens=saved)

    assert auth.tokens == saved  # sent as they are: no login first
    assert auth.grant().form == {"grant_type": "client_credentials"}
    person = TokenAuth(PasswordLogin("ann@example.com", "pw"), ENDPOINTS,
                       tokens=Tokens("at-0", "rt-0"))  # fmt: skip
    assert person.grant().form == {"grant_type": "refresh_token", "refresh_token": "rt-0"}
    with pytest.raises(ValueError, match="not both"):
        TokenAuth(saved, ENDPOINTS, tokens=saved)


@pytest.mark.parametrize(
    "tokens",
    [
        Tokens("at", "rt", datetime(2030, 1, 1, 12, 30, tzinfo=UTC), "jobs:read jobs:write"),
        Tokens("at"),
    ],
)
def test_tokens_turn_into_json_values_and_back(tokens):
    document = tokens.to_dict()

    assert Tokens.from_dict(json.loads(json.dumps(document))) == tokens
    assert set(document) == {"accessToken", "refreshToken", "expiresAt", "scope"}


@pytest.mark.parametrize(
    ("document", "error"),
    [
        ({"refreshToken": "rt"}, KeyError),
        ({"accessToken": 1}, TypeError),
        ({"accessToken": "at", "expiresAt": "soon"}, ValueError),
    ],
)
def test_what_is_no_tokens_document_is_refused(document, error):
    with pytest.raises(error):
        Tokens.from_dict(document)
