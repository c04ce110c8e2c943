"""The Python client of the scheduling platform's APIs (job, user and auth services).

    from scheduler_client import Client, Endpoints, PasswordLogin, errors

    with Client(Endpoints.local(), auth=PasswordLogin("ann@example.com", "...")) as client:
        job = client.jobs.create({...})

`Client` is synchronous, `AsyncClient` its asyncio twin. Request bodies are `models` or plain
dicts; answers are `models`; every failure is an `errors.ClientError`. Depends on httpx and
pydantic only.
"""

from scheduler_client import errors, models
from scheduler_client.aio import AsyncClient
from scheduler_client.auth import ClientCredentials, PasswordLogin, TokenAuth, Tokens
from scheduler_client.client import Client
from scheduler_client.endpoints import Endpoints

__all__ = [
    "AsyncClient",
    "Client",
    "ClientCredentials",
    "Endpoints",
    "PasswordLogin",
    "TokenAuth",
    "Tokens",
    "errors",
    "models",
]
