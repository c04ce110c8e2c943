"""Password hashing: argon2id through pwdlib, with OWASP's recommended parameters.

19 MiB of memory, two passes, one lane (OWASP Password Storage Cheat Sheet). Each hash holds
19 MiB while it runs, so callers that hash on behalf of many clients bound how many run at once.
"""

from __future__ import annotations

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

MEMORY_COST_KIB = 19 * 1024
TIME_COST = 2
PARALLELISM = 1


def new_hasher() -> PasswordHash:
    return PasswordHash(
        (Argon2Hasher(memory_cost=MEMORY_COST_KIB, time_cost=TIME_COST, parallelism=PARALLELISM),)
    )
