"""What long-running service loops share: waiting that a stop request cuts short, and backing
off after errors so that a loop whose database or broker is away resumes by itself."""

from __future__ import annotations

import asyncio


class ErrorBackoff:
    """Delays after consecutive errors: `initial_s`, doubling, at most `max_s`; `reset` after a
    success."""

    def __init__(self, initial_s: float, max_s: float):
        self.initial_s = initial_s
        self.max_s = max(max_s, initial_s)
        self._next_s = initial_s

    def next_delay(self) -> float:
        delay = self._next_s
        self._next_s = min(self.max_s, self._next_s * 2)
        return delay

    def reset(self) -> None:
        self._next_s = self.initial_s


async def pause(stop: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds`, or less if `stop` is set meanwhile; True when stopping."""
    if stop.is_set():
        return True
    try:
        async with asyncio.timeout(max(0.0, seconds)):
            await stop.wait()
    except TimeoutError:
        return False
    return True
