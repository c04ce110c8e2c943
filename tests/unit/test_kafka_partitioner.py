"""Keys are placed on partitions as Kafka's default partitioner places them.

The vectors are the Java client's own: `Utils.murmur2` in Kafka's UtilsTest, and the partitions
among 1000 that its default partitioner chooses (kafka-python checks the same ones against it).
"""

from __future__ import annotations

import struct

import pytest
from aiokafka.partitioner import murmur2
from hypothesis import given
from hypothesis import strategies as st

from libs.infra import kafka

SEED = 0x9747B28C
M = 0x5BD1E995
MASK = 0xFFFFFFFF


def java_murmur2(data: bytes) -> int:
    """`org.apache.kafka.common.utils.Utils.murmur2`, as a Java int (signed 32 bits)."""
    h = (SEED ^ len(data)) & MASK
    whole = len(data) - len(data) % 4
    for (k,) in struct.iter_unpack("<I", data[:whole]):
        k = (k * M) & MASK
        k ^= k >> 24
        k = (k * M) & MASK
        h = ((h * M) & MASK) ^ k
    tail = data[whole:]
    if tail:
        for shift, byte in enumerate(tail):
            h ^= byte << (8 * shift)
        h = (h * M) & MASK
    h ^= h >> 13
    h = (h * M) & MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def as_java_int(value: int) -> int:
    return value - (1 << 32) if value & 0x80000000 else value


@pytest.mark.parametrize(
    ("key", "java"),
    [
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_murmur2_is_the_java_clients(key, java):
    assert as_java_int(murmur2(key)) == java
    assert java_murmur2(key) == java


@pytest.mark.parametrize(
    ("key", "partition"),
    [(b"", 681), (b"a", 524), (b"ab", 434), (b"abc", 107), (b"123456789", 566), (b"\x00 ", 742)],
)
def test_a_key_goes_where_the_java_client_puts_it(key, partition):
    assert kafka.partition_for(key, list(range(1000))) == partition


def test_partitions_are_indexed_in_id_order_not_named_by_the_hash():
    # The hash picks a position in the sorted ids, as the Java client does with its list.
    assert kafka.partition_for(b"abc", [10, 20, 30]) == [10, 20, 30][(479470107 & 0x7FFFFFFF) % 3]


@given(st.binary(max_size=64), st.integers(min_value=1, max_value=64))
def test_aiokafkas_murmur2_agrees_with_the_reference_on_any_key(key, partitions):
    assert as_java_int(murmur2(key)) == java_murmur2(key)
    expected = (java_murmur2(key) & 0x7FFFFFFF) % partitions
    assert kafka.partition_for(key, list(range(partitions))) == expected
