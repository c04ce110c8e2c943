"""When the executor's poll loop fetches (`executor_service.fetching.Pacing`)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from executor_service.fetching import Pacing

INTERVAL_S = 1.0
STALE_S = 0.15
ASKED = 500


def pacing() -> Pacing:
    return Pacing(idle_interval_s=INTERVAL_S, stale_s=STALE_S)


def poll(p: Pacing, at: float, fetched: int, *, rings: int = 1, behind: bool = False) -> bool:
    """One fetching poll at `at`, with `rings` notifications received by then, that brought
    `fetched` of the `ASKED` messages; whether the next poll fetches."""
    p.polling(at, rings=rings)
    p.polled(at, fetched=fetched, asked=ASKED, behind=behind)
    return p.wants_fetch(at, rings, listening=True)


def quiet_at(t: float) -> Pacing:
    """A pacing whose start round ended with nothing at `t`, with no notification since."""
    p = pacing()
    poll(p, t, 0, rings=0)
    return p


def test_the_first_poll_fetches_what_was_published_before_the_start():
    assert pacing().wants_fetch(0.0, 0, listening=True)


def test_a_round_that_brings_nothing_ends_and_the_next_waits_for_a_notification():
    p = quiet_at(10.0)
    assert not p.wants_fetch(10.1, 0, listening=True)
    assert abs(p.quiet_for(10.1) - 0.9) < 1e-9
    assert p.wants_fetch(10.1, 1, listening=True)  # a notification came


def test_without_notifications_a_round_starts_every_idle_interval():
    p = quiet_at(10.0)
    assert not p.wants_fetch(10.0 + INTERVAL_S - 0.01, 0, listening=True)
    assert p.wants_fetch(10.0 + INTERVAL_S, 0, listening=True)


def test_a_round_ends_once_a_poll_brings_everything_there_was():
    # Long after the last pause: no answer to an older fetch is left.
    assert not poll(quiet_at(10.0), 11.0, 3)


def test_a_short_poll_keeps_the_round_going_while_the_broker_tells_of_more():
    """Some partitions' answers are still on their way, or were cut at their size limit."""
    p = quiet_at(10.0)
    assert poll(p, 11.0, 120, behind=True)
    assert poll(p, 11.01, 0, behind=True)
    assert not poll(p, 11.02, 80)


def test_a_full_poll_keeps_the_round_going():
    assert poll(quiet_at(10.0), 11.0, ASKED)


def test_a_notification_during_a_poll_keeps_the_round_going():
    p = quiet_at(10.0)
    assert not poll(p, 11.0, 3)
    assert p.wants_fetch(11.0, 2, listening=True)


def test_soon_after_a_round_ended_with_nothing_the_first_answer_does_not_end_the_next():
    """That answer may be to a fetch sent before the pause, older than the publication."""
    p = quiet_at(10.0)
    assert poll(p, 10.05, 3)
    assert not poll(p, 10.06, 2)


def test_it_fetches_all_the_time_while_not_listening_or_with_no_interval():
    p = quiet_at(10.0)
    assert p.wants_fetch(10.1, 0, listening=False)
    always = Pacing(idle_interval_s=0, stale_s=STALE_S)
    poll(always, 10.0, 0, rings=0)
    assert always.wants_fetch(10.1, 0, listening=True)


@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=2),
            st.integers(0, 3),
            st.integers(0, 600),
            st.booleans(),
        ),
        max_size=30,
    )
)
def test_after_a_notification_a_fetching_poll_always_follows(steps):
    """Whatever the polls brought, a notification received makes the next poll fetch, and a
    round never ends while the broker tells of messages not brought back yet."""
    p = pacing()
    now, rings = 0.0, 0
    for gap, new_rings, fetched, behind in steps:
        now += gap
        rings += new_rings
        if new_rings:
            assert p.wants_fetch(now, rings, listening=True)
        if p.wants_fetch(now, rings, listening=True):
            fetches_next = poll(p, now, min(fetched, ASKED), rings=rings, behind=behind)
            assert fetches_next or not behind
        assert p.quiet_for(now) <= INTERVAL_S + 1e-9
