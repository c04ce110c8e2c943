"""The Kafka helpers on a real broker: topics, an idempotent producer, a manual-commit consumer."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner

from libs.infra import config, kafka
from libs.infra.errors import BrokerUnavailable
from schedctl import embedded

DEADLINE_S = 30


class BrokerSettings(config.KafkaSettings):
    service_name = "test_service"


def settings_for(bootstrap: str, name: str, partitions: int = 3) -> BrokerSettings:
    return BrokerSettings(
        database_url="postgresql://unused@127.0.0.1/unused",
        kafka_bootstrap_servers=bootstrap,
        kafka_dispatch_topic=f"{name}.dispatch",
        kafka_dead_letter_topic=f"{name}.dead-letter",
        kafka_dispatch_partitions=partitions,
    )


async def test_ensure_topics_creates_both_topics_once(kafka_bootstrap_servers, unique_name):
    settings = settings_for(kafka_bootstrap_servers, unique_name, partitions=4)

    await kafka.ensure_topics(settings)
    await kafka.ensure_topics(settings)  # a second start finds them and changes nothing

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap_servers)
    await admin.start()
    try:
        described = {
            d["topic"]: len(d["partitions"])
            for d in await admin.describe_topics(
                [settings.kafka_dispatch_topic, settings.kafka_dead_letter_topic]
            )
        }
    finally:
        await admin.close()
    assert described == {settings.kafka_dispatch_topic: 4, settings.kafka_dead_letter_topic: 1}


async def test_envelope_round_trip_through_the_broker(kafka_bootstrap_servers, unique_name):
    settings = settings_for(kafka_bootstrap_servers, unique_name)
    producer = kafka.Producer(settings)
    sent = [
        kafka.Envelope(type="job.dispatch", producer="test", payload={"job_id": f"job-{i}", "n": i})
        for i in range(5)
    ]
    try:
        await producer.start()
        acks = await producer.send_all(
            settings.kafka_dispatch_topic,
            [("job-1", kafka.encode(envelope)) for envelope in sent],
            timeout_s=DEADLINE_S,
        )
        await producer.ping()
    finally:
        await producer.stop()
    assert not [a for a in acks if isinstance(a, Exception)]

    consumer = kafka.create_consumer(
        settings, settings.kafka_dispatch_topic, group_id=f"{unique_name}-group"
    )
    await kafka.start(consumer)
    try:
        received = []
        async with asyncio.timeout(DEADLINE_S):
            while len(received) < len(sent):
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    received.extend(records)
        await consumer.commit()
        partition = TopicPartition(settings.kafka_dispatch_topic, received[0].partition)
        committed = await consumer.committed(partition)
    finally:
        await consumer.stop()

    # One key, one partition, order kept; every envelope arrives whole, exactly once.
    assert {r.partition for r in received} == {received[0].partition}
    assert [kafka.decode(r.value) for r in received] == sent
    assert all(r.key == b"job-1" for r in received)
    assert committed == received[-1].offset + 1


# Keys of Kafka's own murmur2 test vectors, with the hash the Java client computes for each.
JAVA_MURMUR2 = {
    "21": -973932308,
    "foobar": -790332482,
    "a-little-bit-long-string": -985981536,
    "a-little-bit-longer-string": -1486304829,
    "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    "abc": 479470107,
}


async def test_send_all_puts_each_key_where_the_java_client_would(
    kafka_bootstrap_servers, unique_name
):
    """Every key lands on the partition Kafka's default partitioner chooses, so a producer
    written with any Kafka client keeps one job's messages on one partition with ours."""
    partitions = 5
    settings = settings_for(kafka_bootstrap_servers, unique_name, partitions=partitions)
    expected = {key: (java & 0x7FFFFFFF) % partitions for key, java in JAVA_MURMUR2.items()}
    everywhere = list(range(partitions))
    for _ in range(40):  # job ids, as the dispatch topic is keyed
        key = str(uuid.uuid4())
        expected[key] = DefaultPartitioner()(key.encode(), everywhere, everywhere)
    producer = kafka.Producer(settings)
    try:
        await producer.start()
        acks = await producer.send_all(
            settings.kafka_dispatch_topic,
            [(key, key.encode()) for key in expected],
            timeout_s=DEADLINE_S,
        )
    finally:
        await producer.stop()
    assert not [a for a in acks if isinstance(a, Exception)]

    consumer = kafka.create_consumer(
        settings, settings.kafka_dispatch_topic, group_id=f"{unique_name}-group"
    )
    await kafka.start(consumer)
    placed: dict[str, int] = {}
    try:
        async with asyncio.timeout(DEADLINE_S):
            while len(placed) < len(expected):
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    placed.update((r.key.decode(), r.partition) for r in records)
    finally:
        await consumer.stop()
    assert placed == expected
    assert len(set(placed.values())) == partitions  # the keys are spread, not all on one


async def test_unreachable_broker_is_named(unique_name):
    settings = settings_for("127.0.0.1:1", unique_name).model_copy(
        update={"kafka_request_timeout_ms": 1000}
    )
    producer = kafka.create_producer(settings)
    try:
        await kafka.start(producer)
    except BrokerUnavailable as exc:
        assert "cannot connect to Kafka" in str(exc)
    else:
        raise AssertionError("a producer started without a broker")


async def test_a_producer_outlives_a_broker_that_restarts_empty(unique_name, tmp_path):
    """The broker is killed and started again with nothing (no topics, no producer ids): the
    send that fails says so, the producer is not ready, and it recovers by itself: the next
    readiness check rebuilds it, topics included, and sends go through again."""
    broker = embedded.EmbeddedBroker(embedded.free_port(), log_path=tmp_path / "broker.log")
    broker.start()
    settings = settings_for(broker.bootstrap_servers, unique_name)
    producer = kafka.Producer(settings)
    message = [("key", b"value")]
    try:
        await producer.start()
        assert not isinstance((await producer.send_all(settings.kafka_dispatch_topic, message,
                                                       timeout_s=5))[0], Exception)  # fmt: skip
        broker.proc.kill()
        broker.proc.wait(10)
        broker.proc = None
        broker.start()  # same port, nothing in it

        # The old client's producer id is unknown to the new broker.
        [failed] = await producer.send_all(settings.kafka_dispatch_topic, message, timeout_s=5)
        assert isinstance(failed, BrokerUnavailable)
        assert not producer.healthy

        await producer.ping()  # rebuilds: a new producer id, the topics created again
        assert producer.healthy
        [acked] = await producer.send_all(settings.kafka_dispatch_topic, message, timeout_s=5)
        assert not isinstance(acked, Exception)
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        await admin.start()
        try:
            assert settings.kafka_dead_letter_topic in await admin.list_topics()
        finally:
            await admin.close()
    finally:
        await producer.stop()
        broker.stop()


async def test_position_and_end_tell_what_a_consumer_has_not_been_given_yet(
    kafka_bootstrap_servers, unique_name
):
    settings = settings_for(kafka_bootstrap_servers, unique_name, partitions=1)
    topic = settings.kafka_dispatch_topic
    partition = TopicPartition(topic, 0)
    await kafka.ensure_topics(settings)
    producer = kafka.Producer(settings)
    consumer = kafka.create_consumer(settings, topic, group_id=f"{unique_name}-group")
    try:
        await producer.start()
        acks = await producer.send_all(
            topic, [("k", f"m{i}".encode()) for i in range(5)], timeout_s=DEADLINE_S
        )
        assert not [a for a in acks if isinstance(a, Exception)]
        await kafka.start(consumer)
        async with asyncio.timeout(DEADLINE_S):
            while not consumer.assignment():
                await consumer.getmany(timeout_ms=100, max_records=1)
        assert await kafka.position_and_end(consumer, TopicPartition(topic, 7), 0.01) is None

        # Handed one message at a time: the answer that brought them told where the log ends.
        given = []
        async with asyncio.timeout(DEADLINE_S):
            while not given:
                given = (await consumer.getmany(timeout_ms=500, max_records=1)).get(partition, [])
        assert await kafka.position_and_end(consumer, partition, 0.01) == (given[-1].offset + 1, 5)
        async with asyncio.timeout(DEADLINE_S):
            while len(given) < 5:
                given += (await consumer.getmany(timeout_ms=500)).get(partition, [])
        assert await kafka.position_and_end(consumer, partition, 0.01) == (5, 5)
    finally:
        await consumer.stop()
        await producer.stop()
