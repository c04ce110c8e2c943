"""Envelope encode and decode throughput: every dispatch is encoded once by a scheduler and
decoded once by an executor, so this bounds neither side's rate by much, and here is by how much.

Run: .venv/bin/python -m bench.envelope_codec
"""

from __future__ import annotations

import statistics
import time
import uuid

from libs.infra import kafka

MESSAGES = 20_000
ROUNDS = 7


def sample() -> kafka.Envelope:
    return kafka.Envelope(
        type="job.dispatch",
        producer="scheduler-node-1",
        payload={
            "job_id": str(uuid.uuid4()),
            "execution_id": str(uuid.uuid4()),
            "scheduled_for": "2026-11-22T16:00:00Z",
            "attempt": 1,
            "lease_version": 42,
        },
    )


def rate(operation, items) -> float:
    started = time.perf_counter()
    for item in items:
        operation(item)
    return len(items) / (time.perf_counter() - started)


def main() -> None:
    envelopes = [sample() for _ in range(MESSAGES)]
    encoded = [kafka.encode(e) for e in envelopes]
    encode_rates = [rate(kafka.encode, envelopes) for _ in range(ROUNDS)]
    decode_rates = [rate(kafka.decode, encoded) for _ in range(ROUNDS)]
    print(f"envelope size: {len(encoded[0])} bytes")
    print(f"encode: median {statistics.median(encode_rates):,.0f} messages/s over {ROUNDS} rounds")
    print(f"decode: median {statistics.median(decode_rates):,.0f} messages/s over {ROUNDS} rounds")


if __name__ == "__main__":
    main()
