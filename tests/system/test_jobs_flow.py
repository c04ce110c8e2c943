"""The jobs API through the platform `schedctl up` runs: a user logs in, creates a job, sees
it with its next run time, changes and pauses it; another user cannot see it."""

from __future__ import annotations

import signal

import httpx
from platform_process import START_DEADLINE_S, Up, free_ports, still_running

PASSWORD = "correct horse battery staple"


def login(ports: dict[str, int], email: str) -> dict[str, str]:
    users = f"http://127.0.0.1:{ports['user_service']}"
    auth = f"http://127.0.0.1:{ports['auth_service']}"
    body = {"email": email, "password": PASSWORD, "displayName": email.split("@")[0]}
    assert httpx.post(f"{users}/v1/users", json=body, timeout=10).status_code == 202
    answer = httpx.post(
        f"{auth}/oauth/token",
        data={"grant_type": "password", "username": email, "password": PASSWORD},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def test_create_read_change_and_isolate_jobs(tmp_path):
    ports = free_ports()
    up = Up(tmp_path, ports)
    try:
        up.wait_for_line("Press Ctrl-C to stop.", START_DEADLINE_S)
        ada, bob = login(ports, "ada@example.com"), login(ports, "bob@example.com")
        jobs = httpx.Client(base_url=f"http://127.0.0.1:{ports['job_service']}", timeout=10)

        created = jobs.post(
            "/v1/jobs",
            headers=ada,
            json={
                "name": "nightly report",
                "type": "log",
                "payload": {"message": "report"},
                "schedule": {
                    "kind": "cron",
                    "expression": "30 1 * * *",
                    "timezone": "Europe/London",
                },
            },
        )
        assert created.status_code == 201, created.text
        job = created.json()
        assert job["status"] == "SCHEDULED"
        assert job["nextRunAt"].endswith(("Z", "+00:00"))

        assert jobs.get(f"/v1/jobs/{job['id']}", headers=ada).status_code == 200
        assert jobs.get(f"/v1/jobs/{job['id']}", headers=bob).status_code == 404
        assert [j["id"] for j in jobs.get("/v1/jobs", headers=bob).json()["items"]] == []

        etag = created.headers["etag"]
        changed = jobs.patch(
            f"/v1/jobs/{job['id']}",
            headers={**ada, "If-Match": etag},
            json={"schedule": {"kind": "fixed_rate", "intervalSeconds": 3600}},
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["nextRunAt"] != job["nextRunAt"]
        stale = jobs.patch(
            f"/v1/jobs/{job['id']}", headers={**ada, "If-Match": etag}, json={"name": "late"}
        )
        assert stale.status_code == 412

        paused = jobs.post(f"/v1/jobs/{job['id']}:pause", headers=ada)
        assert paused.status_code == 200, paused.text
        assert paused.json()["status"] == "PAUSED"

        preview = jobs.post(
            "/v1/schedules:preview",
            headers=ada,
            json={"schedule": {"kind": "cron", "expression": "0/10 * * * * ?"}, "count": 3},
        )
        assert preview.status_code == 200, preview.text
        started = up.descendants()
    finally:
        code = up.stop(signal.SIGINT)
    assert code == 0
    assert still_running(started) == []
