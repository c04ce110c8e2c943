"""The first admin account of a new installation."""

from __future__ import annotations

import secrets

from libs.infra import db
from libs.scheduling.states import Role
from libs.security import emails, passwords
from user_service import repository

GENERATED_PASSWORD_BYTES = 18  # 24 URL-safe characters, 144 bits


async def ensure_first_admin(database_url: str, email: str) -> str | None:
    """Create an admin with a generated password unless an admin exists.

    Returns the generated password (to be shown once), or None when an admin already existed.
    """
    engine = db.create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        async with db.unit_of_work(db.session_factory(engine)) as session:
            await repository.lock_admins(session)
            if await repository.admin_exists(session):
                return None
            password = secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
            await repository.create_user(
                session,
                email=emails.normalise(email),
                password_hash=passwords.new_hasher().hash(password),
                display_name="Administrator",
                role=Role.ADMIN,
            )
            return password
    finally:
        await engine.dispose()
