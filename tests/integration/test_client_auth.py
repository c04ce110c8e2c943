"""The synchronous client's tokens, against the real auth service: the first login, renewal
before expiry and after a 401 (refresh tokens rotate; client credentials log in again, also
after starting from saved tokens), one renewal shared by concurrent requests, `on_tokens`,
logout, and a service that does not answer."""

from __future__ import annotations

import concurrent.futures
import dataclasses
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from client_support import log_job, running

from libs.scheduling.states import Role
from schedctl import embedded
from scheduler_client import Client, ClientCredentials, Endpoints, PasswordLogin, Tokens, errors

CONCURRENT_REQUESTS = 8


@pytest.fixture
def platform(database_url, serve_app):
    with running(database_url, serve_app) as platform:
        yield platform


def _paths(sent: list[httpx.Request]) -> list[str]:
    return [request.url.path for request in sent]


def _tokens_of(platform, login) -> Tokens:
    with platform.client(login) as client:
        return client.login()


def test_the_first_request_logs_in_and_on_tokens_hears_of_it(platform):
    heard: list[Tokens] = []
    with platform.client(platform.account(), on_tokens=heard.append) as client:
        assert client.tokens is None
        client.jobs.list()
        client.jobs.list()

        assert heard == [client.tokens]
    [tokens] = heard
    assert tokens.refresh_token
    assert "jobs:read" in tokens.scope.split()
    lifetime = tokens.expires_at - datetime.now(UTC)
    assert timedelta(minutes=14) < lifetime <= timedelta(minutes=15)


def test_an_expiring_access_token_is_refreshed_before_the_request(platform):
    saved = _tokens_of(platform, platform.account())
    expiring = dataclasses.replace(saved, expires_at=datetime.now(UTC) + timedelta(seconds=10))
    heard: list[Tokens] = []
    sent: list[httpx.Request] = []
    http = httpx.Client(event_hooks={"request": [sent.append]})

    with platform.client(expiring, on_tokens=heard.append, http_client=http) as client:
        client.users.me()

    assert _paths(sent) == ["/oauth/token", "/v1/users/me"]
    [renewed] = heard
    assert renewed.access_token != saved.access_token
    # The auth service rotated the refresh token: the new one is kept, the old one is spent.
    assert renewed.refresh_token not in (None, saved.refresh_token)
    with platform.client(dataclasses.replace(renewed, access_token="x")) as client:
        assert client.users.me()
    http.close()


def test_a_refused_access_token_is_renewed_once_and_the_request_sent_again(platform):
    saved = _tokens_of(platform, platform.account())
    refused = dataclasses.replace(saved, access_token="not-a-token")
    heard: list[Tokens] = []
    sent: list[httpx.Request] = []
    http = httpx.Client(event_hooks={"request": [sent.append]})

    with platform.client(refused, on_tokens=heard.append, http_client=http) as client:
        me = client.users.me()

    assert me.role == "user"
    assert _paths(sent) == ["/v1/users/me", "/oauth/token", "/v1/users/me"]
    assert sent[-1].headers["authorization"] == f"Bearer {heard[0].access_token}"
    assert heard[0].refresh_token != saved.refresh_token
    http.close()


def test_a_refused_token_that_cannot_be_renewed_raises_unauthorized(platform):
    with platform.client(Tokens("not-a-token")) as client:
        with pytest.raises(errors.Unauthorized) as caught:
            client.users.me()
        assert caught.value.slug == "unauthenticated"
        with pytest.raises(errors.ClientError, match="log in again"):
            client.login()
    with platform.client() as anonymous, pytest.raises(errors.ClientError, match="no credentials"):
        anonymous.login()


def test_client_credentials_log_in_again_when_the_token_is_refused(platform):
    with platform.client(platform.account(Role.ADMIN)) as admin:
        account = admin.service_accounts.create(name="robot", scopes=["jobs:read"])
        heard: list[Tokens] = []
        robot = ClientCredentials(account.client_id, account.client_secret)
        with platform.client(robot, on_tokens=heard.append) as client:
            client.jobs.list()
            # Disabling and enabling the account ends the tokens issued before.
            admin.service_accounts.disable(account.id)
            admin.service_accounts.enable(account.id)
            client.jobs.list()

    assert len(heard) == 2
    assert heard[0].access_token != heard[1].access_token
    assert [tokens.refresh_token for tokens in heard] == [None, None]
    assert heard[1].scope == "jobs:read"


def test_saved_tokens_are_used_first_and_the_secret_logs_in_when_they_are_refused(platform):
    with platform.client(platform.account(Role.ADMIN)) as admin:
        account = admin.service_accounts.create(name="saved", scopes=["jobs:read"])
        robot = ClientCredentials(account.client_id, account.client_secret)
        saved = _tokens_of(platform, robot)
        heard: list[Tokens] = []
        sent: list[httpx.Request] = []
        http = httpx.Client(event_hooks={"request": [sent.append]})
        with platform.client(robot, tokens=saved, on_tokens=heard.append, http_client=http) as c:
            c.jobs.list()
            assert (_paths(sent), heard) == (["/v1/jobs"], [])  # no login while they are good
            # Disabling and enabling the account ends the tokens issued before their expiry.
            admin.service_accounts.disable(account.id)
            admin.service_accounts.enable(account.id)
            c.jobs.list()
        http.close()

    assert _paths(sent) == ["/v1/jobs", "/v1/jobs", "/oauth/token", "/v1/jobs"]
    [renewed] = heard
    assert renewed.access_token != saved.access_token
    assert sent[-1].headers["authorization"] == f"Bearer {renewed.access_token}"
    with platform.client(saved) as alone, pytest.raises(errors.Unauthorized):
        alone.jobs.list()  # without the secret, the refused tokens are the end


def test_concurrent_requests_share_one_refresh(platform):
    saved = _tokens_of(platform, platform.account())
    expired = dataclasses.replace(saved, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    heard: list[Tokens] = []

    # A second refresh with the same (spent) refresh token would revoke the whole family.
    with (
        platform.client(expired, on_tokens=heard.append) as client,
        concurrent.futures.ThreadPoolExecutor(CONCURRENT_REQUESTS) as pool,
    ):
        answers = list(pool.map(lambda _: client.users.me(), range(CONCURRENT_REQUESTS)))
        assert client.users.me() == answers[0]

    assert len({me.id for me in answers}) == 1
    assert len(heard) == 1


def test_logout_revokes_the_refresh_token(platform):
    login = platform.account()
    with platform.client(login) as client:
        saved = client.login()
        client.logout()

        assert client.tokens is None
        with pytest.raises(errors.Unauthorized):
            client.jobs.list()  # nothing to authenticate with any more
    with platform.client(saved) as client, pytest.raises(errors.InvalidGrant) as caught:
        client.login()
    assert caught.value.extensions["error"] == "invalid_grant"
    assert caught.value.extensions["error_description"] == caught.value.detail


def test_a_wrong_password_raises_invalid_grant(platform):
    login = platform.account()
    with platform.client(PasswordLogin(login.username, "wrong")) as client:
        with pytest.raises(errors.InvalidGrant) as caught:
            client.jobs.list()
    assert isinstance(caught.value, errors.BadRequest)
    assert caught.value.status == 400
    assert client.tokens is None


def test_the_auth_servers_metadata_and_keys(platform):
    with platform.client() as client:
        metadata = client.server_metadata()
        keys = client.jwks()

    assert metadata.token_endpoint.endswith("/oauth/token")
    assert "client_credentials" in metadata.grant_types_supported
    assert keys["keys"][0]["kty"] == "EC"


def test_a_service_that_does_not_answer_raises_connection_failed():
    closed = f"http://127.0.0.1:{embedded.free_port()}"
    with Client(closed) as client, pytest.raises(errors.ConnectionFailed) as caught:
        client.job_types.list()

    assert caught.value.url == f"{closed}/v1/job-types"
    assert closed in str(caught.value)
    assert isinstance(caught.value, errors.ClientError)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_an_auth_service_that_does_not_answer_raises_connection_failed(platform):
    closed = f"http://127.0.0.1:{embedded.free_port()}"
    endpoints = dataclasses.replace(platform.endpoints, auth=closed)
    with (
        Client(endpoints, auth=platform.account()) as client,
        pytest.raises(errors.ConnectionFailed) as caught,
    ):
        client.jobs.list()

    assert caught.value.url == f"{closed}/oauth/token"


def test_a_timeout_raises_connection_failed(platform):
    with (
        Client(platform.endpoints, timeout=1e-6) as client,
        pytest.raises(errors.ConnectionFailed) as caught,
    ):
        client.job_types.list()

    assert isinstance(caught.value.__cause__, httpx.TimeoutException)
    assert "Timeout" in caught.value.reason


class RecordingTransport(httpx.HTTPTransport):
    """A real transport that notes what it carries and whether it was closed."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []
        self.closed = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return super().handle_request(request)

    def close(self) -> None:
        self.closed = True
        super().close()


def test_a_given_transport_carries_every_request_and_is_closed_with_the_client(platform):
    transport = RecordingTransport()
    with platform.client(platform.account(), transport=transport) as client:
        client.jobs.list()
        assert not transport.closed

    assert transport.paths == ["/oauth/token", "/v1/jobs"]
    assert transport.closed


def test_a_given_http_client_is_used_and_left_open(platform):
    transport = RecordingTransport()
    http = httpx.Client(transport=transport)
    with platform.client(http_client=http) as client:
        client.server_metadata()

    assert transport.paths == ["/.well-known/oauth-authorization-server"]
    assert not http.is_closed
    http.close()
    with pytest.raises(ValueError, match="not both"):
        platform.client(http_client=http, transport=transport)


def test_one_base_url_reaches_every_service_behind_an_ingress(platform):
    login = platform.account()
    with Client(platform.ingress, auth=login) as client:
        assert client.endpoints == Endpoints.single(platform.ingress + "/")
        job = client.jobs.create(log_job())
        assert client.users.me().id == job.owner_id
        client.logout()
    with Client(platform.ingress, auth=login) as client:
        assert client.jobs.get(job.id).version == job.version
