"""The session file of `schedctl login`: only its owner can read it, whatever the umask; it is
replaced whole; it is found where the user's config lives; and it says how to renew."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta

import pytest

from schedctl import session
from schedctl.output import NOT_LOGGED_IN, UsageProblem
from scheduler_client import auth, endpoints

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def a_session(kind: str = session.USER, expires_at: datetime | None = None) -> session.Session:
    return session.Session(
        endpoints=endpoints.Endpoints.single("https://scheduler.example.com/api"),
        kind=kind,
        name="ada@example.com" if kind == session.USER else "sa_123",
        tokens=auth.Tokens(
            access_token="access",
            refresh_token="refresh" if kind == session.USER else None,
            expires_at=expires_at or NOW + timedelta(minutes=15),
            scope="jobs:read jobs:write",
        ),
        client_secret=None if kind == session.USER else "secret",
    )


@pytest.fixture
def open_umask():
    previous = os.umask(0)
    yield
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_file_is_the_owners_alone_whatever_the_umask(tmp_path, open_umask):
    store = session.Store(tmp_path / "config" / "schedctl")
    store.save(a_session())
    assert mode(store.path) == 0o600
    assert mode(store.folder) == 0o700


def test_a_save_replaces_the_file_by_a_new_one_and_leaves_nothing_behind(tmp_path, open_umask):
    store = session.Store(tmp_path)
    store.path.write_text("{}")
    store.path.chmod(0o644)  # an older file others could read
    before = store.path.stat().st_ino
    store.save(a_session())
    assert store.path.stat().st_ino != before  # renamed over it, not rewritten in place
    assert mode(store.path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [session.FILE_NAME]


@pytest.mark.parametrize("kind", [session.USER, session.SERVICE_ACCOUNT])
def test_a_session_reads_back_as_it_was_saved(tmp_path, kind):
    store = session.Store(tmp_path)
    saved = a_session(kind)
    store.save(saved)
    assert store.load() == saved


def test_no_password_is_ever_in_the_file(tmp_path):
    store = session.Store(tmp_path)
    store.save(a_session())
    document = store.path.read_text()
    assert "password" not in document.lower()
    assert '"clientSecret": null' in document


def test_no_file_is_no_session_and_a_foreign_file_is_named(tmp_path):
    store = session.Store(tmp_path)
    assert store.load() is None
    with pytest.raises(UsageProblem, match=NOT_LOGGED_IN):
        session.required(store.load())
    store.path.write_text('{"endpoints": {}}')
    with pytest.raises(UsageProblem, match=f"{store.path} is not a session of schedctl"):
        store.load()
    assert store.delete() is True
    assert store.delete() is False


def test_the_folder_is_the_users_config_folder_unless_overridden(monkeypatch, tmp_path):
    monkeypatch.delenv(session.CONFIG_DIR_VARIABLE, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert session.config_dir() == tmp_path / "xdg" / "schedctl"
    monkeypatch.setenv(session.CONFIG_DIR_VARIABLE, str(tmp_path / "elsewhere"))
    assert session.config_dir() == tmp_path / "elsewhere"


def test_a_service_account_starts_from_its_tokens_and_falls_back_on_its_secret(tmp_path):
    person, machine = a_session(), a_session(session.SERVICE_ACCOUNT)
    assert person.login() is None  # the refresh token renews a person's session
    assert machine.login() == auth.ClientCredentials("sa_123", "secret")
    with session.open_client(machine, session.Store(tmp_path)) as api:
        assert api.tokens == machine.tokens  # no new login while the saved token is good


def test_the_session_file_keeps_its_format_of_camel_case_tokens(tmp_path):
    store = session.Store(tmp_path)
    store.path.write_text(json.dumps({
        "endpoints": {"jobs": "https://j.example.com", "users": "https://u.example.com",
                      "auth": "https://a.example.com"},
        "account": {"kind": "user", "name": "ada@example.com", "clientSecret": None},
        "tokens": {"accessToken": "access", "refreshToken": "refresh",
                   "expiresAt": "2026-03-01T12:15:00+00:00", "scope": "jobs:read"},
    }))  # fmt: skip
    loaded = store.load()
    assert loaded is not None
    assert loaded.tokens == auth.Tokens("access", "refresh", NOW + timedelta(minutes=15),
                                        "jobs:read")  # fmt: skip
    store.save(loaded)
    assert json.loads(store.path.read_text())["tokens"]["expiresAt"] == "2026-03-01T12:15:00+00:00"


def test_a_command_without_a_session_says_to_log_in(monkeypatch, tmp_path):
    monkeypatch.setenv(session.CONFIG_DIR_VARIABLE, str(tmp_path))
    with pytest.raises(UsageProblem, match=NOT_LOGGED_IN), session.connect():
        pass
