"""Password hashing (`libs.security.passwords.Hasher`): argon2id with OWASP's parameters, bounded.

The hashing is real (argon2 through pwdlib). Where a test must see how many hashes run at once,
it wraps the hasher's pwdlib function in a `Gauge`, which counts the calls in progress in their
threads and can hold them at a gate; the real hash still runs.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from libs.security import passwords

OWASP_PARAMETERS = "m=19456,t=2,p=1"
DEADLINE_S = 30.0
TIMING_RUNS = 5


class Gauge:
    """Wraps a function run in threads: counts the calls in progress (and their peak), and holds
    each call at a gate until the test opens it."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.gate = threading.Event()
        self.active = 0
        self.peak = 0

    def wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any) -> Any:
            with self.condition:
                self.active += 1
                self.peak = max(self.peak, self.active)
                self.condition.notify_all()
            try:
                if not self.gate.wait(DEADLINE_S):
                    raise TimeoutError("the test never opened the gate")
                return function(*args)
            finally:
                with self.condition:
                    self.active -= 1
                    self.condition.notify_all()

        return wrapped

    async def until_active(self, count: int) -> None:
        """Wait (in a thread, not the event loop) until at least `count` calls are in progress."""

        def wait() -> bool:
            with self.condition:
                return self.condition.wait_for(lambda: self.active >= count, DEADLINE_S)

        assert await asyncio.to_thread(wait), f"never {count} hashes in progress"


@contextmanager
def gauged(hasher: passwords.Hasher) -> Iterator[Gauge]:
    """A gauge on `hasher`'s hash function; the gate is opened when the block ends, whatever
    happens, so no thread is left waiting."""
    gauge = Gauge()
    pwdlib_hash = hasher._hash  # the PasswordHash the Hasher runs in threads
    original = pwdlib_hash.hash
    pwdlib_hash.hash = gauge.wrap(original)  # type: ignore[method-assign]
    try:
        yield gauge
    finally:
        gauge.gate.set()


# --- hashing and verifying --------------------------------------------------------------------


async def test_a_hash_verifies_its_password_and_no_other():
    hasher = passwords.Hasher()
    stored = await hasher.hash("correct horse")

    assert stored.startswith("$argon2id$")
    assert OWASP_PARAMETERS in stored
    assert await hasher.verify_and_update("correct horse", stored) == (True, None)
    assert await hasher.verify_and_update("correct horse.", stored) == (False, None)
    assert await hasher.verify_and_update("", stored) == (False, None)


async def test_the_same_password_hashes_differently_each_time():
    hasher = passwords.Hasher()

    first, second = await hasher.hash("p4ss"), await hasher.hash("p4ss")

    assert first != second


async def test_a_hash_with_weaker_parameters_is_upgraded_on_verification():
    weak = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=8192),)).hash("s3cret")
    assert OWASP_PARAMETERS not in weak
    hasher = passwords.Hasher()

    matches, upgraded = await hasher.verify_and_update("s3cret", weak)

    assert matches is True
    assert upgraded is not None
    assert OWASP_PARAMETERS in upgraded
    assert await hasher.verify_and_update("s3cret", upgraded) == (True, None)


async def test_a_weaker_hash_is_not_upgraded_for_a_wrong_password():
    weak = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=8192),)).hash("s3cret")

    assert await passwords.Hasher().verify_and_update("guess", weak) == (False, None)


# --- bounds -----------------------------------------------------------------------------------


async def test_with_no_queue_a_second_concurrent_hash_is_refused():
    hasher = passwords.Hasher(max_concurrent=1, max_waiting=0)

    results = await asyncio.gather(hasher.hash("one"), hasher.hash("two"), return_exceptions=True)

    busy = [r for r in results if isinstance(r, passwords.HasherBusy)]
    done = [r for r in results if isinstance(r, str)]
    assert (len(busy), len(done)) == (1, 1)
    assert await hasher.verify_and_update("one", done[0]) == (True, None)


async def test_callers_past_the_running_and_waiting_ones_are_refused():
    hasher = passwords.Hasher(max_concurrent=2, max_waiting=1)

    results = await asyncio.gather(
        *(hasher.hash(f"password-{i}") for i in range(4)), return_exceptions=True
    )

    assert [isinstance(r, passwords.HasherBusy) for r in results] == [False, False, False, True]


async def test_at_most_max_concurrent_hashes_run_at_once():
    hasher = passwords.Hasher(max_concurrent=2, max_waiting=10)
    with gauged(hasher) as gauge:
        calls = asyncio.gather(*(hasher.hash(f"password-{i}") for i in range(6)))
        await gauge.until_active(2)
        gauge.gate.set()
        async with asyncio.timeout(DEADLINE_S):
            hashes = await calls

    assert len(set(hashes)) == 6
    assert gauge.peak == 2


async def test_a_cancelled_caller_keeps_its_slot_until_its_hash_has_finished():
    hasher = passwords.Hasher(max_concurrent=1, max_waiting=0)
    with gauged(hasher) as gauge:
        running = asyncio.create_task(hasher.hash("first"))
        await gauge.until_active(1)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running

        # The thread still hashes: its slot is not free for another hash.
        with pytest.raises(passwords.HasherBusy):
            await hasher.hash("second")

        gauge.gate.set()
        async with asyncio.timeout(DEADLINE_S):
            while True:
                try:
                    stored = await hasher.hash("third")
                    break
                except passwords.HasherBusy:
                    await asyncio.sleep(0.01)  # the slot comes back once the thread has ended

    assert gauge.peak == 1
    assert await hasher.verify_and_update("third", stored) == (True, None)


async def test_a_cancelled_waiting_caller_frees_its_place_and_leaks_no_slot():
    hasher = passwords.Hasher(max_concurrent=1, max_waiting=1)
    with gauged(hasher) as gauge:
        running = asyncio.create_task(hasher.hash("running"))
        await gauge.until_active(1)
        waiting = asyncio.create_task(hasher.hash("waiting"))
        await asyncio.sleep(0)  # one turn of the loop: `waiting` runs up to its wait for a slot
        with pytest.raises(passwords.HasherBusy):  # proof that it holds the one waiting place
            await hasher.hash("probe")

        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

        # Its waiting place is free again (else this is HasherBusy at once), and once the
        # running hash ends its slot goes to this caller (else the deadline passes).
        later = asyncio.create_task(hasher.hash("later"))
        gauge.gate.set()
        async with asyncio.timeout(DEADLINE_S):
            first, stored = await asyncio.gather(running, later)

    assert await hasher.verify_and_update("later", stored) == (True, None)
    assert await hasher.verify_and_update("running", first) == (True, None)
    assert gauge.peak == 1


# --- timing -----------------------------------------------------------------------------------


async def elapsed_s(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


async def test_verifying_nothing_takes_about_as_long_as_a_real_verification():
    hasher = passwords.Hasher()
    stored = await hasher.hash("the password")
    real, nothing = [], []
    for _ in range(TIMING_RUNS):
        real.append(await elapsed_s(lambda: hasher.verify_and_update("a guess", stored)))
        nothing.append(await elapsed_s(lambda: hasher.verify_nothing("a guess")))

    ratio = statistics.median(nothing) / statistics.median(real)

    assert 0.5 < ratio < 2.0, (real, nothing)
