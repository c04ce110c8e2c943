"""The `kafka` job type: publish the payload (key, JSON value, headers) to a topic.

The message goes through the executor's own producer (idempotent, `acks=all`), so it is on the
broker when the occurrence succeeds. The platform's own topics (dispatch, dead letters) are
refused: a job must not be able to forge dispatches or dead letters.
"""

from __future__ import annotations

import json

from aiokafka.errors import (
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
)

from executor_service.strategy import PermanentFailure, Resources, Run, TransientFailure
from libs.infra.errors import BrokerUnavailable
from libs.scheduling.job_types import KafkaPayload

# Errors a retry cannot cure: the topic or the message itself is wrong.
_PERMANENT = (
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
)


class KafkaStrategy:
    def __init__(self, resources: Resources):
        self._producer = resources.producer
        settings = resources.settings
        self._internal = frozenset(
            {settings.kafka_dispatch_topic, settings.kafka_dead_letter_topic}
        )

    async def run(self, payload: KafkaPayload, run: Run) -> None:
        if payload.topic in self._internal:
            raise PermanentFailure(
                f"topic {payload.topic!r} is internal to the scheduler", kind="topic_not_allowed"
            )
        value = json.dumps(payload.value, separators=(",", ":"), ensure_ascii=False).encode()
        headers = [(name, text.encode()) for name, text in payload.headers.items()]
        headers.append(("idempotency-key", run.occurrence_key.encode()))
        key = payload.key.encode() if payload.key is not None else None
        try:
            await self._producer.send_and_wait(payload.topic, value, key=key, headers=headers)
        except _PERMANENT as exc:
            raise PermanentFailure(
                f"publish to {payload.topic!r} refused: {type(exc).__name__}", kind="kafka_refused"
            ) from exc
        except (KafkaError, BrokerUnavailable) as exc:
            raise TransientFailure(
                f"publish to {payload.topic!r} failed: {type(exc).__name__}",
                kind="kafka_unavailable",
            ) from exc


def create(resources: Resources) -> KafkaStrategy:
    return KafkaStrategy(resources)
