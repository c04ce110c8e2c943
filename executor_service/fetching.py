"""When the executor fetches: when a scheduler says it published, not by polling the broker.

A scheduler sends `NOTIFY executor_dispatches_published` once a batch's messages are on the
broker (acknowledged). Each notification starts a fetch round: the executor's partitions are
resumed, and the round ends with the first poll that brings back everything there was (fewer
messages than it asked for, with every partition read up to the end the broker last gave for
it), or nothing at all; then the partitions are paused, and no fetch request goes to the broker
until the next notification. Without one, a round starts every `fetch.idle.interval.s` all the
same (a notification missed while reconnecting, a message published by hand, a broker that
restarted), and while the listening connection is down the executor fetches all the time, as a
plain consumer does.

Kafka answers a waiting fetch as soon as a message arrives, so there this only saves the idle
fetches. The embedded broker looks for messages at fixed points of a fetch's wait, so there it is
also what starts a job due now within milliseconds of its publication.

A round that began shortly after one ended with nothing may first get the answer to a fetch sent
before the pause, which may predate the publication that started the round: such a round ends
only after a fetch sent within it has answered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Pacing:
    """The fetch rounds of one consumer. `rings` counts the notifications received so far."""

    idle_interval_s: float  # a round at least this often; 0: fetch all the time
    stale_s: float  # how long a fetch sent before a pause may still answer (its wait + margin)
    in_round: bool = False
    rings_seen: int = 0  # notifications received before the last fetching poll began
    # Monotonic; none yet, so a round is due at start: what was published before is fetched.
    round_began: float = -math.inf
    ended_empty_at: float = -math.inf  # when the last round ended with nothing
    needs_fresh: bool = False  # this round ends only after a fetch sent within it answered

    def wants_fetch(self, now: float, rings: int, *, listening: bool) -> bool:
        """Whether the next poll fetches."""
        return (
            not listening
            or self.idle_interval_s == 0
            or self.in_round
            or rings != self.rings_seen
            or now - self.round_began >= self.idle_interval_s
        )

    def quiet_for(self, now: float) -> float:
        """Seconds until a round is due without a notification."""
        return max(0.0, self.round_began + self.idle_interval_s - now)

    def polling(self, now: float, rings: int) -> None:
        """A fetching poll begins."""
        if not self.in_round:
            self.in_round = True
            self.round_began = now
            self.needs_fresh = now < self.ended_empty_at + self.stale_s
        self.rings_seen = rings

    def polled(self, now: float, *, fetched: int, asked: int, behind: bool = False) -> None:
        """A fetching poll brought back `fetched` messages of the `asked` it could take;
        `behind`: the broker's answers so far tell of messages not brought back yet."""
        if fetched >= asked or behind:
            return  # more may be waiting, or more is
        if fetched == 0:
            self.in_round = False
            self.ended_empty_at = now
        elif self.needs_fresh:
            self.needs_fresh = False  # the next answer is to a fetch sent within the round
        else:
            self.in_round = False
