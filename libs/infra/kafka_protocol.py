"""Teach aiokafka version 3 of the InitProducerId request.

aiokafka speaks only InitProducerId v0, whose request carries no producer id or epoch. Brokers
that implement the newer semantics (KIP-360), the embedded Tansu broker among them, answer v0
with an unknown error, so an idempotent producer (`enable_idempotence=True`, which every
producer here uses) cannot start. Version 3 sends `producer_id = -1, producer_epoch = -1`,
which asks for a fresh id exactly as v0 did. aiokafka negotiates the highest version both sides
support, so against a broker without v3 nothing changes.

`libs.infra.kafka.create_producer` installs the patch before it builds a producer (a second install
changes nothing), so only a process that produces runs with a patched aiokafka. The patch is
written for the aiokafka release pyproject.toml pins; tests/unit/test_kafka_protocol.py checks
every internal it reads or replaces.
"""

from __future__ import annotations

from aiokafka.protocol import transaction
from aiokafka.protocol.api import RequestStruct, Response
from aiokafka.protocol.types import CompactString, Int16, Int32, Int64, Schema, TaggedFields

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1


class InitProducerIdResponse_v3(Response):
    API_KEY = 22
    API_VERSION = 3
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("producer_id", Int64),
        ("producer_epoch", Int16),
        ("tags", TaggedFields),
    )


class InitProducerIdRequest_v3(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 22
    API_VERSION = 3
    RESPONSE_TYPE = InitProducerIdResponse_v3
    SCHEMA = Schema(
        ("transactional_id", CompactString("utf-8")),
        ("transaction_timeout_ms", Int32),
        ("producer_id", Int64),
        ("producer_epoch", Int16),
        ("tags", TaggedFields),
    )


_build_v0 = transaction.InitProducerIdRequest.build


def _build(self: transaction.InitProducerIdRequest, request_struct_class: type) -> RequestStruct:
    if request_struct_class is InitProducerIdRequest_v3:
        return InitProducerIdRequest_v3(
            self._transactional_id,
            self._transaction_timeout_ms,
            NO_PRODUCER_ID,
            NO_PRODUCER_EPOCH,
            {},
        )
    return _build_v0(self, request_struct_class)


def install() -> None:
    """Register v3 beside v0 (idempotent: a second call changes nothing)."""
    request = transaction.InitProducerIdRequest
    if InitProducerIdRequest_v3 not in request._CLASSES:
        request._CLASSES = (*request._CLASSES, InitProducerIdRequest_v3)
        request.build = _build  # type: ignore[method-assign]
