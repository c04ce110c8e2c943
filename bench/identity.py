"""Identity throughput: how many access tokens one process verifies per second, and how many
password logins (argon2id verifications) it can do per second at the platform's parameters.

Token verification is what every API request pays (`libs.security.tokens.Verifier`, ES256, keys
already cached); password verification is what bounds logins (`libs.security.passwords.Hasher`, 19
MiB, t=2, p=1), with one and with two hashes allowed at once. No database, no HTTP: the figures are
the cryptography's ceiling, before any I/O.

Run: .venv/bin/python -m bench.identity
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid

from auth_service import keys, service
from auth_service.settings import Settings
from libs.scheduling.states import Role
from libs.security import passwords, scopes, tokens

TOKENS = 2_000
ROUNDS = 5
LOGINS = 24  # per round and per concurrency level: argon2id takes tens of ms each
PASSWORD = "correct horse battery staple"  # noqa: S105 (made up, for the benchmark)


def signed_tokens(settings: Settings, signer: keys.Signer, count: int) -> list[str]:
    now = int(time.time())
    return [
        signer.sign(
            service.access_claims(
                settings,
                subject=uuid.uuid4(),
                kind="user",
                granted=scopes.for_role(Role.USER),
                generation=0,
                now=now,
                jti=uuid.uuid4().hex,
            )
        )
        for _ in range(count)
    ]


async def verification_rate(verifier: tokens.Verifier, issued: list[str]) -> float:
    started = time.perf_counter()
    for token in issued:
        await verifier.verify(token)
    return len(issued) / (time.perf_counter() - started)


async def login_rate(hasher: passwords.Hasher, stored: str, count: int) -> float:
    started = time.perf_counter()
    results = await asyncio.gather(
        *(hasher.verify_and_update(PASSWORD, stored) for _ in range(count))
    )
    assert all(ok for ok, _ in results)
    return count / (time.perf_counter() - started)


async def main() -> None:
    settings = Settings(database_url="postgresql://unused@127.0.0.1/unused")
    signer = keys.generate("ES256")

    async def jwks() -> dict[str, object]:
        return {"keys": [signer.public_jwk()]}

    cache = tokens.KeyCache(jwks, algorithm="ES256")
    verifier = tokens.Verifier(
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        algorithm="ES256",
        keys=cache,
    )
    issued = signed_tokens(settings, signer, TOKENS)
    await verifier.verify(issued[0])  # loads the key: the rounds measure verification only
    token_rates = [await verification_rate(verifier, issued) for _ in range(ROUNDS)]
    print(f"cores available: {os.cpu_count()}")
    print(
        f"access tokens verified (ES256, one process): median "
        f"{statistics.median(token_rates):,.0f}/s over {ROUNDS} rounds of {TOKENS}"
    )

    stored = passwords.new_hasher().hash(PASSWORD)
    for concurrent in (1, 2):
        hasher = passwords.Hasher(max_concurrent=concurrent, max_waiting=LOGINS)
        rates = [await login_rate(hasher, stored, LOGINS) for _ in range(ROUNDS)]
        print(
            f"password verifications (argon2id m={passwords.MEMORY_COST_KIB} KiB, "
            f"t={passwords.TIME_COST}, p={passwords.PARALLELISM}), max_concurrent={concurrent}: "
            f"median {statistics.median(rates):,.1f}/s "
            f"({1000 * concurrent / statistics.median(rates):,.0f} ms each) over {ROUNDS} rounds"
        )


if __name__ == "__main__":
    asyncio.run(main())
