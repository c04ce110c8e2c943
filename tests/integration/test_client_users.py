"""The synchronous client against the real user service: registration, one's own account,
the administration of users and service accounts, and the problems they answer."""

from __future__ import annotations

import uuid

import pytest
from client_support import PASSWORD, running

from libs.scheduling.states import Role
from scheduler_client import ClientCredentials, PasswordLogin, errors, models

NEW_PASSWORD = "a much longer passphrase now"


@pytest.fixture
def platform(database_url, serve_app):
    with running(database_url, serve_app, account_max_failures=2) as platform:
        yield platform


@pytest.fixture
def admin(platform):
    with platform.client(platform.account(Role.ADMIN)) as client:
        yield client


def test_a_registered_person_logs_in_and_changes_their_profile(platform):
    with platform.client() as anonymous:
        accepted = anonymous.users.register(
            email="Ann@Example.com", password=PASSWORD, display_name="Ann"
        )
    assert accepted.email == "ann@example.com"

    with platform.client(PasswordLogin(accepted.email, PASSWORD)) as client:
        me = client.users.me()
        assert (me.email, me.display_name, me.role, me.locked_until) == (
            "ann@example.com",
            "Ann",
            models.Role.USER,
            None,
        )
        assert client.users.update_me(display_name="Ann B").display_name == "Ann B"
        assert client.users.me().display_name == "Ann B"


def test_a_weak_password_is_refused_naming_the_field(platform):
    with platform.client() as anonymous, pytest.raises(errors.InvalidRequest) as caught:
        anonymous.users.register(email="bob@example.com", password="short", display_name="Bob")

    assert [error.field for error in caught.value.errors] == ["body.password"]


def test_a_password_change_ends_the_sessions_of_the_old_password(platform):
    login = platform.account()
    with platform.client(login) as client:
        with pytest.raises(errors.WrongPassword):
            client.users.change_password(current_password="wrong", new_password=NEW_PASSWORD)
        client.users.change_password(current_password=PASSWORD, new_password=NEW_PASSWORD)

        # The access token is refused now, and so is the refresh token that would renew it.
        with pytest.raises(errors.InvalidGrant):
            client.users.me()

    with platform.client(PasswordLogin(login.username, NEW_PASSWORD)) as client:
        assert client.users.me().email == login.username
    with platform.client(login) as client, pytest.raises(errors.InvalidGrant):
        client.login()


def test_admins_list_read_and_change_users(platform, admin):
    ann = platform.account(email="ann@example.com")
    platform.account(email="anna@example.com")
    platform.account(email="bob@example.com")

    page = admin.users.list(email="ann", limit=1)
    assert [u.email for u in page.items] == ["ann@example.com"]
    assert [u.email for u in admin.users.iterate(email="ann", limit=1)] == [
        "ann@example.com",
        "anna@example.com",
    ]
    user = page.items[0]
    assert admin.users.get(user.id) == user

    assert admin.users.set_role(user.id, "admin").role == models.Role.ADMIN
    assert admin.users.set_role(user.id, models.Role.USER).role == "user"
    assert admin.users.disable(user.id).disabled is True
    with platform.client(ann) as client, pytest.raises(errors.InvalidGrant):
        client.users.me()  # a disabled account cannot log in
    assert admin.users.enable(user.id).disabled is False

    with pytest.raises(errors.UserNotFound):
        admin.users.get(uuid.uuid4())
    me = admin.users.me()
    with pytest.raises(errors.SelfLockout) as caught:
        admin.users.disable(me.id)
    assert isinstance(caught.value, errors.Conflict)


def test_failed_logins_lock_the_account_until_an_admin_unlocks_it(platform, admin):
    login = platform.account()
    wrong = PasswordLogin(login.username, "not the password")
    for _ in range(2):
        with platform.client(wrong) as client, pytest.raises(errors.InvalidGrant):
            client.login()

    with platform.client(login) as client, pytest.raises(errors.LoginLocked) as caught:
        client.login()
    assert isinstance(caught.value, errors.RateLimited)
    assert caught.value.retry_after is not None and caught.value.retry_after > 0
    assert caught.value.extensions["error"] == "temporarily_unavailable"

    [locked] = admin.users.list(locked=True).items
    assert locked.email == login.username
    assert locked.locked_until is not None
    assert admin.users.unlock(locked.id).locked_until is None
    with platform.client(login) as client:
        assert client.users.me().email == login.username


def test_admins_manage_service_accounts(platform, admin):
    created = admin.service_accounts.create(name="reporter", scopes=["jobs:read", "jobs:write"])
    assert created.client_id and created.client_secret
    assert created.client_secret not in repr(created)
    admin.service_accounts.create(name="other", scopes=["jobs:read"])

    assert admin.service_accounts.get(created.id).name == "reporter"
    assert [a.name for a in admin.service_accounts.iterate(limit=1)] == ["reporter", "other"]
    assert len(admin.service_accounts.list().items) == 2

    robot = ClientCredentials(created.client_id, created.client_secret)
    with platform.client(robot) as client:
        assert client.jobs.list().items == []
        with pytest.raises(errors.UserPrincipalRequired):
            client.users.me()

    rotated = admin.service_accounts.rotate_secret(created.id)
    assert rotated.client_secret != created.client_secret
    assert rotated.secret_rotated_at is not None
    with platform.client(robot) as client, pytest.raises(errors.InvalidClient) as caught:
        client.login()
    assert isinstance(caught.value, errors.Unauthorized)

    assert admin.service_accounts.disable(created.id).disabled is True
    assert admin.service_accounts.enable(created.id).disabled is False
    with pytest.raises(errors.ServiceAccountNotFound):
        admin.service_accounts.get(uuid.uuid4())


def test_what_admins_may_do_is_refused_to_others(platform):
    with platform.client(platform.account()) as client:
        with pytest.raises(errors.InsufficientScope):
            client.users.list()
        with pytest.raises(errors.InsufficientScope):
            client.service_accounts.create(name="x", scopes=["jobs:read"])
