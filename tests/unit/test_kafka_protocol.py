"""The InitProducerId v3 patch against the aiokafka it is written for.

`libs.infra.kafka_protocol` reads and replaces aiokafka internals; a release that renames or
reshapes any of them must fail here, not in a producer that cannot start. The expected bytes come
from Kafka's protocol description (InitProducerId v3 is a flexible version: compact nullable string,
tagged fields, request header v2), not from aiokafka.
"""

from __future__ import annotations

import inspect
import struct
from io import BytesIO

from aiokafka.producer.message_accumulator import MessageAccumulator
from aiokafka.producer.producer import AIOKafkaProducer
from aiokafka.protocol import api, transaction, types
from aiokafka.protocol.struct import Struct

from libs.infra import kafka_protocol

INIT_PRODUCER_ID = 22  # Kafka's API key
TIMEOUT_MS = 60_000  # aiokafka's default transaction timeout, sent by an idempotent producer


def test_the_request_builder_the_patch_replaces_is_aiokafkas():
    request = transaction.InitProducerIdRequest
    assert issubclass(request, api.Request)
    assert request.API_KEY == INIT_PRODUCER_ID
    # The sender builds its request with these keywords; the patch reads them back.
    parameters = list(inspect.signature(request.__init__).parameters)
    assert parameters == ["self", "transactional_id", "transaction_timeout_ms"]
    built = request(transactional_id="tx", transaction_timeout_ms=TIMEOUT_MS)
    assert built._transactional_id == "tx"
    assert built._transaction_timeout_ms == TIMEOUT_MS
    # `build(self, request_struct_class)`, the original kept for the versions before 3.
    assert list(inspect.signature(kafka_protocol._build_v0).parameters) == [
        "self",
        "request_struct_class",
    ]
    assert kafka_protocol._build_v0.__qualname__ == "InitProducerIdRequest.build"


def test_the_version_list_is_a_tuple_of_request_structs_oldest_first():
    classes = transaction.InitProducerIdRequest._CLASSES
    assert isinstance(classes, tuple)
    assert classes[0] is transaction.InitProducerIdRequest_v0
    assert all(issubclass(c, api.RequestStruct) for c in classes)
    versions = [c.API_VERSION for c in classes]
    assert versions == sorted(versions)
    # aiokafka ships v0 only: a release with its own later versions makes this patch obsolete.
    assert set(versions) <= {0, 3}


def test_request_struct_and_response_have_the_shape_the_v3_classes_rely_on():
    for attribute in ("FLEXIBLE_VERSION", "build_request_header", "parse_response_header"):
        assert hasattr(api.RequestStruct, attribute)
    assert api.RequestStruct.FLEXIBLE_VERSION is False  # opted into per class
    v3 = kafka_protocol.InitProducerIdRequest_v3(None, TIMEOUT_MS, -1, -1, {})
    assert isinstance(v3.build_request_header(1, "c"), api.RequestHeader_v2)
    assert issubclass(api.Response, Struct)
    assert api.Response.__abstractmethods__ == {"API_KEY", "API_VERSION"}
    for name in ("CompactString", "Int16", "Int32", "Int64", "Schema", "TaggedFields"):
        assert inspect.isclass(getattr(types, name))


def test_install_adds_v3_once_and_keeps_v0():
    kafka_protocol.install()
    kafka_protocol.install()
    assert transaction.InitProducerIdRequest.build is kafka_protocol._build
    classes = transaction.InitProducerIdRequest._CLASSES
    assert classes.count(kafka_protocol.InitProducerIdRequest_v3) == 1
    assert classes[0] is transaction.InitProducerIdRequest_v0


def test_aiokafka_negotiates_v3_when_the_broker_has_it_and_v0_otherwise():
    kafka_protocol.install()
    request = transaction.InitProducerIdRequest(
        transactional_id=None, transaction_timeout_ms=TIMEOUT_MS
    )
    newer = request.prepare({INIT_PRODUCER_ID: (0, 4)})
    assert isinstance(newer, kafka_protocol.InitProducerIdRequest_v3)
    older = request.prepare({INIT_PRODUCER_ID: (0, 2)})
    assert isinstance(older, transaction.InitProducerIdRequest_v0)
    assert older.encode() == b"\xff\xff" + struct.pack(">i", TIMEOUT_MS)  # null string, timeout


def test_a_v3_request_encodes_as_kafka_specifies():
    kafka_protocol.install()
    request = transaction.InitProducerIdRequest(
        transactional_id=None, transaction_timeout_ms=TIMEOUT_MS
    ).prepare({INIT_PRODUCER_ID: (0, 3)})
    body = (
        b"\x00"  # transactional_id: compact nullable string, null
        + struct.pack(">i", TIMEOUT_MS)  # transaction_timeout_ms
        + struct.pack(">q", -1)  # producer_id: none yet
        + struct.pack(">h", -1)  # producer_epoch: none yet
        + b"\x00"  # no tagged fields
    )
    assert request.encode() == body
    header = request.build_request_header(correlation_id=7, client_id="sched")
    assert header.encode() == (
        struct.pack(">hhi", INIT_PRODUCER_ID, 3, 7)
        + struct.pack(">h", 5)  # request header v2: client_id stays a (non-compact) string
        + b"sched"
        + b"\x00"  # no tagged fields
    )
    transactional = transaction.InitProducerIdRequest(
        transactional_id="tx", transaction_timeout_ms=TIMEOUT_MS
    ).prepare({INIT_PRODUCER_ID: (3, 3)})
    assert transactional.encode().startswith(b"\x03tx")  # compact string: length + 1


def test_a_v3_response_decodes_to_what_the_sender_reads():
    raw = (
        struct.pack(">i", 0)  # throttle_time_ms
        + struct.pack(">h", 0)  # error_code
        + struct.pack(">q", 4242)  # producer_id
        + struct.pack(">h", 0)  # producer_epoch
        + b"\x00"  # no tagged fields
    )
    response = kafka_protocol.InitProducerIdResponse_v3.decode(BytesIO(raw))
    assert (response.error_code, response.producer_id, response.producer_epoch) == (0, 4242, 0)
    assert kafka_protocol.InitProducerIdRequest_v3.RESPONSE_TYPE is (
        kafka_protocol.InitProducerIdResponse_v3
    )


def test_a_stopping_producers_batches_can_be_failed_through_its_accumulator():
    # libs.infra.kafka.stop fails what a stopping producer still retries: `_message_accumulator`.
    assert callable(MessageAccumulator.fail_all)
    assert list(inspect.signature(MessageAccumulator.fail_all).parameters) == [
        "self",
        "exception",
    ]
    assert "self._message_accumulator = MessageAccumulator(" in inspect.getsource(
        AIOKafkaProducer.__init__
    )
