"""Schema migrations as function calls: upgrade, downgrade, and the current revision.

These are synchronous and block: the Alembic environment runs its own event loop with
`asyncio.run`. From async code, run them in a thread:

    await asyncio.to_thread(migrate.upgrade, database_url)

Several processes may call `upgrade` at once (copies of a service starting together): the
migration environment serializes them with a PostgreSQL advisory lock, and the later ones find
nothing to do. Inside one process calls are serialized by a lock, because Alembic keeps the
running migration's context in module globals.

URLs are libpq style (`postgresql://user:password@host:port/database`).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory

import libs.store.migrations

# The migrations ship inside the `libs` package, so this works from an installed wheel too.
MIGRATIONS_DIR = Path(libs.store.migrations.__file__).resolve().parent

# Alembic's `context` proxy is process-global; two migrations in two threads of one process
# would overwrite each other's. Across processes the advisory lock in env.py takes over.
_in_process = threading.Lock()


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database at `database_url` up to `revision` (default: the latest)."""
    with _in_process:
        _refuse_inside_event_loop()
        command.upgrade(_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    """Migrate the database down to `revision` (`"base"` removes every table of the platform)."""
    with _in_process:
        _refuse_inside_event_loop()
        command.downgrade(_config(database_url), revision)


def current(database_url: str) -> str | None:
    """The revision the database is at, or None if it has never been migrated.

    Reading never creates Alembic's version table. Waits while a migration is running.
    """
    config = _config(database_url)
    script = ScriptDirectory.from_config(config)
    found: list[str] = []

    def record(heads: tuple[str, ...], _context: object) -> list[object]:
        found.extend(heads)
        return []  # no migration steps: only read

    with _in_process:
        _refuse_inside_event_loop()
        with EnvironmentContext(config, script, fn=record, dont_mutate=True):
            script.run_env()
    if len(found) > 1:
        raise RuntimeError(f"the database is on several branches: {sorted(found)}")
    return found[0] if found else None


def head() -> str:
    """The latest revision shipped with this code (no database needed)."""
    heads = ScriptDirectory.from_config(_config(None)).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"the migrations must have exactly one head, found {heads}")
    return heads[0]


def _config(database_url: str | None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Passed as an attribute, not an ini option: a password may hold '%', which ini
    # interpolation would misread, and attributes are never written anywhere.
    if database_url is not None:
        config.attributes["database_url"] = database_url
    return config


def _refuse_inside_event_loop() -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return  # no loop in this thread: the environment may start its own
    raise RuntimeError(
        "libs.store.migrate blocks and starts its own event loop; from async code use "
        "`await asyncio.to_thread(migrate.upgrade, url)`"
    )
