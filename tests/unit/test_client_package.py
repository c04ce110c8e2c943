"""The client library as a package: it needs nothing but httpx and pydantic, its sync and
async clients offer the same operations with the same parameters, and no repr shows a
secret."""

from __future__ import annotations

import ast
import inspect
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

import scheduler_client
from scheduler_client import aio, client, models

PACKAGE = Path(scheduler_client.__file__).parent
ALLOWED = {"httpx", "pydantic", "pydantic_core", "scheduler_client"}
GROUPS = [
    "jobs",
    "executions",
    "dead_letters",
    "schedules",
    "job_types",
    "nodes",
    "webhook_secret",
    "users",
    "service_accounts",
]


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_the_package_imports_only_the_standard_library_httpx_and_pydantic():
    modules = sorted(PACKAGE.glob("*.py"))
    imported = set().union(*(_imports(path) for path in modules))

    assert len(modules) >= 7
    assert imported - sys.stdlib_module_names - ALLOWED == set()
    assert (PACKAGE / "py.typed").exists()


def _methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(cls).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }


def _parameters(signature: inspect.Signature) -> list[tuple[str, object, object, object]]:
    return [(p.name, p.kind, p.default, p.annotation) for p in signature.parameters.values()]


@pytest.mark.parametrize("group", GROUPS)
def test_the_async_client_has_the_sync_clients_operations(group):
    sync = client.Client("http://127.0.0.1:1")
    asynchronous = aio.AsyncClient("http://127.0.0.1:1")
    sync_methods = _methods(type(getattr(sync, group)))
    async_methods = _methods(type(getattr(asynchronous, group)))

    assert sync_methods.keys() == async_methods.keys()
    for name, signature in sync_methods.items():
        assert _parameters(signature) == _parameters(async_methods[name]), name
        is_async = inspect.iscoroutinefunction(getattr(type(getattr(asynchronous, group)), name))
        assert is_async is (name != "iterate"), name
    sync.close()


def test_both_clients_have_every_group_and_the_same_top_level_operations():
    sync = client.Client("http://127.0.0.1:1")
    asynchronous = aio.AsyncClient("http://127.0.0.1:1")

    assert [g for g in vars(sync) if not g.startswith("_") and g != "endpoints"] == GROUPS
    assert [g for g in vars(asynchronous) if not g.startswith("_") and g != "endpoints"] == GROUPS
    assert _methods(client.Client).keys() - {"close"} == _methods(aio.AsyncClient).keys() - {
        "aclose"
    }
    sync.close()


def test_no_repr_shows_a_secret():
    when = datetime(2030, 1, 1, tzinfo=UTC)
    shown = [
        scheduler_client.PasswordLogin("ann@example.com", "SECRET-1"),
        scheduler_client.ClientCredentials("sa_1", "SECRET-2"),
        scheduler_client.Tokens("SECRET-3", "SECRET-4", when, "jobs:read"),
        models.TokenResponse(
            access_token="SECRET-5", expires_in=1, scope="s", refresh_token="SECRET-6"
        ),
        models.Registration(email="a@example.com", password="SECRET-7", display_name="A"),
        models.PasswordChange(current_password="SECRET-8", new_password="SECRET-9"),
        models.WebhookSecret(
            secret="SECRET-10", created_at=when, rotated_at=None, previous_valid_until=None
        ),
    ]

    for value in shown:
        assert "SECRET" not in repr(value)
        assert "SECRET" not in str(value)
    assert "ann@example.com" in repr(shown[0])
    assert "2030" in repr(shown[2])
