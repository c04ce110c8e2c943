"""`db.transaction`, the workers' unit of work: the driver's and the network's errors come out as
`errors.DatabaseUnavailable` (the original kept as its cause, no secret in its message), and
anything else passes through as it was raised."""

from __future__ import annotations

import socket

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from libs.infra import db, errors

PASSWORD = "a-password-not-to-leak"


def refusing_url() -> str:
    """A PostgreSQL URL on a loopback port where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"postgresql://worker:{PASSWORD}@127.0.0.1:{port}/scheduler"


async def test_a_database_that_refuses_connections_is_unavailable():
    engine = db.create_engine(refusing_url(), connect_timeout_s=2)
    try:
        with pytest.raises(errors.DatabaseUnavailable) as raised:
            async with db.transaction(db.session_factory(engine)) as session:
                await session.execute(text("SELECT 1"))
    finally:
        await db.dispose(engine)
    assert errors.is_transient(raised.value)
    assert raised.value.__cause__ is not None
    assert PASSWORD not in str(raised.value)
    assert db.is_unavailable(raised.value)


@pytest.mark.parametrize(
    "driver_error",
    [
        OperationalError("SELECT 1", None, ConnectionResetError("reset")),
        asyncpg.PostgresError("server closed the connection"),
        asyncpg.InterfaceError("connection is closed"),
        ConnectionRefusedError("refused"),
    ],
)
async def test_a_driver_error_raised_in_the_block_is_translated(driver_error):
    engine = db.create_engine(refusing_url())
    try:
        with pytest.raises(errors.DatabaseUnavailable) as raised:
            async with db.transaction(db.session_factory(engine)):
                raise driver_error
    finally:
        await db.dispose(engine)
    assert raised.value.__cause__ is driver_error


async def test_anything_else_passes_through_untranslated():
    engine = db.create_engine(refusing_url())
    try:
        with pytest.raises(KeyError):
            async with db.transaction(db.session_factory(engine)):
                raise KeyError("a bug")
    finally:
        await db.dispose(engine)
