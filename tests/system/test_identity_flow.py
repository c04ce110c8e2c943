"""Identity through the platform `schedctl up` runs: register, log in, refresh, call a
protected endpoint with the right scope and be refused without it; lock an account with wrong
passwords and have an admin see the lock and lift it."""

from __future__ import annotations

import signal

import httpx
from platform_process import START_DEADLINE_S, Up, free_ports, still_running

PASSWORD = "correct horse battery staple"
ACCOUNT_MAX_FAILURES = 5  # the auth service's default (`account.max.failures`)


def test_register_login_refresh_and_scoped_access(tmp_path):
    ports = free_ports()
    up = Up(tmp_path, ports)
    try:
        up.wait_for_line("Press Ctrl-C to stop.", START_DEADLINE_S)
        output = "\n".join(up.seen)
        admin_password = output.split("password: ", 1)[1].split()[0]
        users = httpx.Client(base_url=f"http://127.0.0.1:{ports['user_service']}", timeout=10)
        auth = httpx.Client(base_url=f"http://127.0.0.1:{ports['auth_service']}", timeout=10)

        registered = users.post(
            "/v1/users",
            json={"email": "Ada@Example.com", "password": PASSWORD, "displayName": "Ada"},
        )
        assert registered.status_code == 202, registered.text
        assert registered.json() == {"email": "ada@example.com"}
        assert "password" not in registered.text

        login = auth.post(
            "/oauth/token",
            data={"grant_type": "password", "username": "ada@example.com", "password": PASSWORD},
        )
        assert login.status_code == 200, login.text
        tokens = login.json()
        assert tokens["token_type"] == "Bearer"
        assert set(tokens["scope"].split()) == {"jobs:read", "jobs:write", "jobs:run"}
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}

        me = users.get("/v1/users/me", headers=bearer)
        assert me.status_code == 200, me.text
        assert me.json()["email"] == "ada@example.com"
        assert (me.json()["displayName"], me.json()["lockedUntil"]) == ("Ada", None)

        assert users.get("/v1/users/me").status_code == 401
        refused = users.get("/v1/users", headers=bearer)
        assert refused.status_code == 403
        assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]

        refreshed = auth.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        )
        assert refreshed.status_code == 200, refreshed.text
        assert refreshed.json()["refresh_token"] != tokens["refresh_token"]
        new_bearer = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
        assert users.get("/v1/users/me", headers=new_bearer).status_code == 200
        reused = auth.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        )
        assert reused.status_code in (400, 401)
        assert reused.json()["error"] == "invalid_grant"

        admin = auth.post(
            "/oauth/token",
            data={
                "grant_type": "password",
                "username": "admin@example.com",
                "password": admin_password,
                "scope": "users:admin",
            },
        )
        assert admin.status_code == 200, admin.text
        assert admin.json()["scope"] == "users:admin"
        admin_bearer = {"Authorization": f"Bearer {admin.json()['access_token']}"}
        listed = users.get("/v1/users", headers=admin_bearer)
        assert listed.status_code == 200, listed.text
        assert "ada@example.com" in listed.text
        assert "nextCursor" in listed.json()

        def ada_logs_in(password: str) -> httpx.Response:
            form = {"grant_type": "password", "username": "ada@example.com", "password": password}
            return auth.post("/oauth/token", data=form)

        wrong = [ada_logs_in("not the password") for _ in range(ACCOUNT_MAX_FAILURES)]
        assert [answer.status_code for answer in wrong] == [400] * ACCOUNT_MAX_FAILURES
        assert ada_logs_in(PASSWORD).status_code == 429
        locked = users.get("/v1/users", params={"locked": "true"}, headers=admin_bearer)
        assert [item["email"] for item in locked.json()["items"]] == ["ada@example.com"]
        ada_id = me.json()["id"]
        assert locked.json()["items"][0]["lockedUntil"] is not None
        assert users.post(f"/v1/users/{ada_id}:unlock", headers=new_bearer).status_code == 403
        unlocked = users.post(f"/v1/users/{ada_id}:unlock", headers=admin_bearer)
        assert (unlocked.status_code, unlocked.json()["lockedUntil"]) == (200, None), unlocked.text
        assert ada_logs_in(PASSWORD).status_code == 200

        jwks = auth.get("/.well-known/jwks.json").json()
        assert len(jwks["keys"]) >= 1
        assert all("d" not in key for key in jwks["keys"])  # no private part, ever
        started = up.descendants()
    finally:
        code = up.stop(signal.SIGINT)
    assert code == 0
    assert still_running(started) == []
