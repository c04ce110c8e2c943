"""Kafka producers, consumers, topics and the message envelope every service agrees on.

Producers are idempotent with `acks="all"` (aiokafka's defaults are neither), so a retried send
cannot duplicate or lose a message the broker acknowledged. Consumers commit offsets by hand,
after the outcome of a message is stored, and start from the earliest offset of a new group.
Clients are built from settings by the service's lifespan and started there; aiokafka's errors
are translated here into `BrokerUnavailable` (`libs.infra.errors`, a transient fault the workers'
loops back off from) and `MalformedMessage`.

Services publish through `Producer`, which rebuilds its aiokafka client (and recreates missing
topics) after a failed send: an idempotent aiokafka producer never asks for a new producer id,
so once a broker has lost its state (restarted in memory, or a topic deleted and recreated)
every later send of the old client fails with `UnknownProducerId` for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    UnknownProducerId,
)
from aiokafka.partitioner import murmur2
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from libs.infra import kafka_protocol, log
from libs.infra.config import KafkaSettings
from libs.infra.errors import BrokerUnavailable

ENVELOPE_VERSION = 1
TOPIC_ALREADY_EXISTS = 36  # Kafka protocol error code
STOP_TIMEOUT_S = 2.0  # a working producer's flush at shutdown (a failing one gets 1 s)
STOP_BROKEN_TIMEOUT_S = 1.0  # a failed client's stop before it is replaced
STOP_AFTER_FAILING_S = 1.0  # for a producer's stop once its unsent batches are failed
REBUILD_TIMEOUT_S = 10.0  # topics and a new client, for a send that names no deadline
PING_REBUILD_TIMEOUT_S = 1.5  # within the readiness check's own 2 s


class MessageTooLarge(BrokerUnavailable):
    """A message bigger than a record batch may hold: no broker will take it."""


class MalformedMessage(Exception):
    """A consumed message is not an envelope this version understands."""


# What a send fails with when the client, not the message, is the problem: the broker lost
# this producer's id or sequence (it restarted without its state), or cannot be reached.
_CLIENT_BROKEN = (
    UnknownProducerId,
    OutOfOrderSequenceNumber,
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    ProducerFenced,
    KafkaConnectionError,
    KafkaTimeoutError,
)


class Envelope(BaseModel):
    """Version 1 of the wrapper around every message on every topic.

    `type` names the message (`job.dispatch`, ...) and `version` its payload's schema version;
    payload models change only by adding optional fields, so a reader ignores what it does not
    know. `id` is unique per message, so a consumer can recognise a redelivery.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    envelope: Literal[1] = ENVELOPE_VERSION
    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str = Field(min_length=1, max_length=200)
    version: int = Field(default=1, ge=1)
    produced_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    producer: str = Field(min_length=1, max_length=200)
    payload: dict[str, Any]


def encode(envelope: Envelope) -> bytes:
    return envelope.model_dump_json().encode()


def decode(raw: bytes | None) -> Envelope:
    """Parse a message value; `MalformedMessage` says why it is not a usable envelope."""
    if raw is None:
        raise MalformedMessage("empty message")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedMessage("not JSON") from exc
    if not isinstance(document, dict):
        raise MalformedMessage("not a JSON object")
    if document.get("envelope") != ENVELOPE_VERSION:
        raise MalformedMessage(f"unsupported envelope version {document.get('envelope')!r}")
    try:
        return Envelope.model_validate(document)
    except ValidationError as exc:
        fields = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors())
        raise MalformedMessage(f"invalid envelope fields: {fields}") from exc


def _connection_options(settings: KafkaSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "client_id": f"{settings.service_name}-{settings.node_id}",
        "request_timeout_ms": settings.kafka_request_timeout_ms,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
    if settings.kafka_security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        password = settings.kafka_sasl_password
        options["sasl_plain_password"] = password.get_secret_value() if password else None
    return options


def create_producer(settings: KafkaSettings) -> AIOKafkaProducer:
    """An idempotent, `acks="all"` producer; the caller starts and stops it."""
    kafka_protocol.install()
    return AIOKafkaProducer(
        **_connection_options(settings),
        acks="all",
        enable_idempotence=True,
        linger_ms=5,  # a few ms of batching: scheduler batches publish many messages at once
    )


CONSUMER_IDLE_LOOK_MS = 1000


def create_consumer(
    settings: KafkaSettings, *topics: str, group_id: str, **group: int
) -> AIOKafkaConsumer:
    """A group member that commits offsets only when told to, reading new groups from the start.
    `group` passes aiokafka's membership timings (`session_timeout_ms`, ...)."""
    return AIOKafkaConsumer(
        *topics,
        **_connection_options(settings),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        # How often the background fetcher looks at its partitions when nothing wakes it: a
        # resume, a consumed batch and a rebalance do. aiokafka's 200 ms kept an idle (paused)
        # consumer busy five times a second.
        consumer_timeout_ms=CONSUMER_IDLE_LOOK_MS,
        **group,
    )


async def position_and_end(
    consumer: AIOKafkaConsumer, partition: TopicPartition, wait_s: float
) -> tuple[int, int] | None:
    """The offset of the next message `consumer` returns from `partition` and the partition's end
    (one past its last message, as of the broker's last fetch answer); None when either is not
    known within `wait_s` (the partition was never fetched, or its position is being reset) or
    the partition is no longer assigned. A known position never waits."""
    if partition not in consumer.assignment():
        return None
    end = consumer.highwater(partition)
    if end is None:
        return None
    try:
        async with asyncio.timeout(wait_s):
            position = await consumer.position(partition)
    except (TimeoutError, KafkaError):
        return None
    return position, end


async def start(client: AIOKafkaProducer | AIOKafkaConsumer) -> None:
    """Start a client, translating connection failures; a failed start leaves nothing open."""
    try:
        await client.start()
    except (KafkaError, OSError) as exc:
        await stop(client, STOP_BROKEN_TIMEOUT_S)
        raise BrokerUnavailable(f"cannot connect to Kafka: {type(exc).__name__}") from exc


async def send_all(
    producer: AIOKafkaProducer,
    topic: str,
    messages: Sequence[tuple[str, bytes]],
    *,
    timeout_s: float,
) -> list[float | BrokerUnavailable]:
    """Send every `(key, encoded envelope)` without waiting in between (the producer batches
    them), then wait up to `timeout_s` in all for every acknowledgement.

    Never raises for a message that failed: the answer holds, in order, the `time.monotonic()`
    at which the broker acknowledged each message, or the `BrokerUnavailable` saying why it was
    not acknowledged, so the caller can hand back exactly what did not go out.

    A key always goes to the same partition (so one key's messages keep their order): the one
    Kafka's default partitioner chooses (`partition_for`), so producers written with any other
    Kafka client place the same keys on the same partitions.

    The deadline is needed because an idempotent aiokafka producer retries a batch for as long
    as the broker is away, and never fails it: a message past the deadline may still be
    delivered later, so the caller must make a late copy harmless (the scheduler deletes its
    execution row).
    """
    acked: list[float | BrokerUnavailable | None] = [None] * len(messages)
    futures: list[tuple[list[int], asyncio.Future[Any]]] = []

    def record(members: list[int], future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is None:
            now = time.monotonic()
            for index in members:
                acked[index] = now

    async def submit(builder: Any, partition: int, members: list[int]) -> None:
        # Closed, the batch goes out at once: the producer's linger is for messages sent one by
        # one, and would only delay a batch built whole.
        builder.close()
        try:
            future = await producer.send_batch(builder, topic, partition=partition)
        except KafkaError as exc:
            failure = BrokerUnavailable(f"publish to {topic} failed: {type(exc).__name__}")
            for index in members:
                acked[index] = failure
            return
        future.add_done_callback(partial(record, members))
        futures.append((members, future))

    try:
        async with asyncio.timeout(timeout_s):
            try:
                partitions = sorted(await producer.partitions_for(topic))
            except KafkaError as exc:
                failure = BrokerUnavailable(f"publish to {topic} failed: {type(exc).__name__}")
                return [failure] * len(messages)
            # Record batches built here, one or more per partition: one future per batch
            # rather than per message, which is most of a producer's cost per message.
            by_partition: dict[int, list[int]] = {}
            keys = [key.encode() for key, _ in messages]
            for index, key in enumerate(keys):
                partition = partition_for(key, partitions)
                by_partition.setdefault(partition, []).append(index)
            for partition, indexes in by_partition.items():
                builder, members = producer.create_batch(), []
                for index in indexes:
                    if builder.append(key=keys[index], value=messages[index][1], timestamp=None):
                        members.append(index)
                        continue
                    await submit(builder, partition, members)  # full: send it, start another
                    builder, members = producer.create_batch(), [index]
                    if not builder.append(
                        key=keys[index], value=messages[index][1], timestamp=None
                    ):
                        acked[index] = MessageTooLarge(f"publish to {topic}: message too large")
                        members = []
                if members:
                    await submit(builder, partition, members)
            if futures:
                await asyncio.wait([future for _, future in futures])
    except TimeoutError:
        pass  # what is not acknowledged by now counts as not published
    batch_of = {index: future for members, future in futures for index in members}
    results: list[float | BrokerUnavailable] = []
    for index, outcome in enumerate(acked):
        if outcome is not None:
            results.append(outcome)
            continue
        future = batch_of.get(index)
        if future is not None and future.done() and not future.cancelled():
            reason = type(future.exception()).__name__
        else:
            reason = f"no acknowledgement within {timeout_s} s"
        results.append(BrokerUnavailable(f"publish to {topic} failed: {reason}"))
    return results


def partition_for(key: bytes, partitions: Sequence[int]) -> int:
    """The partition of `key` among `partitions` (sorted by id) as Kafka's default partitioner
    chooses it, in the Java client and every client that follows it: the murmur2 hash of the
    key, made positive by dropping its sign bit, modulo the number of partitions."""
    return partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]


async def ping(producer: AIOKafkaProducer) -> None:
    """Raise `BrokerUnavailable` unless a broker answers a metadata request."""
    try:
        await producer.client.fetch_all_metadata()
    except (KafkaError, OSError) as exc:
        raise BrokerUnavailable(type(exc).__name__) from exc


async def stop(client: AIOKafkaProducer | AIOKafkaConsumer, timeout_s: float) -> bool:
    """Stop a client within `timeout_s`, whatever the broker does; False when it had to be cut
    short. A producer's stop waits for its unsent batches, which an idempotent producer retries
    for as long as the broker is away: past the deadline they are failed, and the client is
    closed without them (the callers make an unacknowledged message harmless)."""
    stopping = asyncio.ensure_future(client.stop())
    done, _ = await asyncio.wait([stopping], timeout=timeout_s)
    if done:
        with contextlib.suppress(KafkaError, OSError):
            stopping.result()
        return True
    if isinstance(client, AIOKafkaProducer):
        client._message_accumulator.fail_all(BrokerUnavailable("producer stopped"))
        done, _ = await asyncio.wait([stopping], timeout=STOP_AFTER_FAILING_S)
    if not done:
        stopping.cancel()
        with contextlib.suppress(asyncio.CancelledError, KafkaError, OSError):
            await stopping
    return False


class Producer:
    """The service's producer: an idempotent, `acks="all"` client that is rebuilt, with the
    service's topics recreated if missing, before the first send after a failed one.

    A send that fails is never retried here: the caller decides what an unacknowledged message
    means (the scheduler hands its dispatches back) and backs off; the next send starts on a
    fresh client. `ping` (the readiness check) rebuilds a failed client too, and fails while
    that cannot be done, so `/readyz` says whether this service can publish, not only whether
    a broker answers.
    """

    def __init__(self, settings: KafkaSettings):
        self._settings = settings
        self._client: AIOKafkaProducer | None = None
        # Why the last send failed, until a send succeeds or the client is rebuilt.
        self._broken: str | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Create the service's topics unless they exist and start a client."""
        await self.connected(REBUILD_TIMEOUT_S)

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Flush and close, within `timeout_s` (1 s when sends are failing: nothing would
        flush), whatever the broker does."""
        if self._client is not None:
            if self._broken is not None:
                timeout_s = min(timeout_s, STOP_BROKEN_TIMEOUT_S)
            await stop(self._client, timeout_s)

    async def send_all(
        self, topic: str, messages: Sequence[tuple[str, bytes]], *, timeout_s: float
    ) -> list[float | BrokerUnavailable]:
        """`send_all` through a working client (rebuilt first when the last send failed)."""
        try:
            client = await self.connected(timeout_s)
        except BrokerUnavailable as exc:
            return [exc] * len(messages)
        try:
            acks = await send_all(client, topic, messages, timeout_s=timeout_s)
        except asyncio.CancelledError:
            self._record("a send was cut short")
            raise
        failures = [a for a in acks if isinstance(a, BrokerUnavailable)]
        broken = [f for f in failures if not isinstance(f, MessageTooLarge)]
        if broken or len(failures) < len(acks):
            self._record(str(broken[0]) if broken else None)
        return acks

    async def send_and_wait(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        timeout_s: float = REBUILD_TIMEOUT_S,
    ) -> None:
        """Send one message and wait for its acknowledgement (the caller bounds the wait);
        aiokafka's error is raised as it is, for the caller to classify. A broker that lost
        this producer's state, or a send cut short, gets the client rebuilt before the next."""
        client = await self.connected(timeout_s)
        try:
            await client.send_and_wait(topic, value, key=key, headers=headers)
        except asyncio.CancelledError:
            self._record("a send was cut short")
            raise
        except _CLIENT_BROKEN as exc:
            self._record(type(exc).__name__)
            raise
        self._record(None)

    async def ping(self) -> None:
        """The readiness check: a broker answers, and a client that failed has been rebuilt
        (the check rebuilds it, so a service that seldom publishes is not left unready)."""
        client = await self.connected(PING_REBUILD_TIMEOUT_S)
        await ping(client)

    def _record(self, failure: str | None) -> None:
        if failure is not None and self._broken is None:
            log.get().warning("producer_failing", error=failure[:200])
        elif failure is None and self._broken is not None:
            log.get().info("producer_recovered")
        self._broken = failure

    @property
    def healthy(self) -> bool:
        """False from a failed send until the client is rebuilt or a send succeeds."""
        return self._broken is None

    async def connected(self, timeout_s: float) -> AIOKafkaProducer:
        """The client to send with: the first one, or after a failed send a new one (topics
        created first when missing); `BrokerUnavailable` when the broker cannot give one."""
        async with self._lock:
            if self._client is not None and self._broken is None:
                return self._client
            rebuilding = self._client is not None or self._broken is not None
            old, self._client = self._client, None
            if old is not None:
                # Batches the old client still retries are failed: their callers have counted
                # them as not published already.
                await stop(old, STOP_BROKEN_TIMEOUT_S)
            client = create_producer(self._settings)
            try:
                async with asyncio.timeout(timeout_s):
                    await ensure_topics(self._settings)
                    await start(client)
            except (TimeoutError, BrokerUnavailable) as exc:
                await stop(client, STOP_BROKEN_TIMEOUT_S)
                self._broken = f"cannot rebuild the producer: {exc or type(exc).__name__}"
                raise BrokerUnavailable(self._broken) from exc
            self._client = client
            if rebuilding:
                log.get().info("producer_rebuilt")
            self._record(None)  # a new producer id: the broker takes sends again
            return client


async def ensure_topics(settings: KafkaSettings) -> None:
    """Create the dispatch and dead-letter topics unless they exist.

    An existing dispatch topic with fewer partitions than configured is kept (partitions are
    never changed behind an operator's back) and reported in the log.
    """
    wanted = {
        settings.kafka_dispatch_topic: settings.kafka_dispatch_partitions,
        settings.kafka_dead_letter_topic: 1,
    }
    admin = AIOKafkaAdminClient(**_connection_options(settings))
    try:
        await admin.start()
        replicas = settings.kafka_replication_factor
        response = await admin.create_topics(
            [NewTopic(name, count, replicas) for name, count in wanted.items()]
        )
        for topic, code, message in response.topic_errors:
            if code == TOPIC_ALREADY_EXISTS:
                continue
            if code != 0:
                raise BrokerUnavailable(f"cannot create topic {topic}: {message or code}")
            log.get().info("topic_created", topic=topic, partitions=wanted[topic])
        for description in await admin.describe_topics(list(wanted)):
            present = len(description["partitions"])
            if present < wanted[description["topic"]]:
                log.get().warning(
                    "topic_has_fewer_partitions",
                    topic=description["topic"],
                    partitions=present,
                    configured=wanted[description["topic"]],
                )
    except (KafkaError, OSError) as exc:
        raise BrokerUnavailable(f"cannot create topics: {type(exc).__name__}") from exc
    finally:
        await admin.close()
