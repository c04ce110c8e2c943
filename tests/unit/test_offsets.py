"""Commit points: never past a message that is not finished, whatever order they finish in."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from executor_service.offsets import Offsets


def test_the_commit_point_stops_at_the_first_unfinished_message():
    offsets = Offsets()
    for offset in (10, 11, 12):
        offsets.fetched("p0", offset)
    offsets.finished("p0", 11)
    offsets.finished("p0", 12)
    assert offsets.to_commit() == {}
    assert offsets.unfinished() == 1
    offsets.finished("p0", 10)
    assert offsets.to_commit() == {"p0": 13}


def test_a_point_is_offered_until_committed_and_partitions_are_independent():
    offsets = Offsets()
    offsets.fetched("p0", 0)
    offsets.fetched("p1", 5)
    offsets.finished("p0", 0)
    assert offsets.to_commit() == {"p0": 1}
    assert offsets.to_commit() == {"p0": 1}  # the commit failed: offered again
    offsets.committed({"p0": 1})
    assert offsets.to_commit() == {}
    assert offsets.unfinished(["p1"]) == 1 and offsets.unfinished(["p0"]) == 0


def test_forgotten_partitions_are_neither_counted_nor_committed():
    offsets = Offsets()
    offsets.fetched("p0", 0)
    offsets.forget(["p0"])
    offsets.finished("p0", 0)
    assert offsets.unfinished() == 0
    assert offsets.to_commit() == {}


@given(st.permutations(range(30)), st.integers(min_value=0, max_value=30))
def test_the_point_is_one_past_the_longest_finished_prefix(order, how_many):
    offsets = Offsets()
    for offset in range(30):
        offsets.fetched("p", offset)
    done = set(order[:how_many])
    for offset in order[:how_many]:
        offsets.finished("p", offset)
    prefix = 0
    while prefix in done:
        prefix += 1
    assert offsets.to_commit() == ({"p": prefix} if prefix else {})
