"""`libs.scheduling.job_types`: the payload contract of each built-in job type, the canonical form
`JobTypes.validate_payload` returns, and the errors it names from `payload.` on."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.contracts import schemas
from libs.scheduling import job_types

URL = "https://example.com/hook"
TYPES = job_types.JobTypes(job_types.BUILT_IN)


def errors_of(type_name: str, payload: object) -> list[tuple[str, str]]:
    with pytest.raises(job_types.InvalidPayload) as caught:
        TYPES.validate_payload(type_name, payload)
    return caught.value.errors


def fields_of(type_name: str, payload: object) -> list[str]:
    return [field for field, _ in errors_of(type_name, payload)]


# --- the registry --------------------------------------------------------------------------------


def test_the_built_in_types():
    assert TYPES.known() == ["http", "kafka", "log"]
    assert [t.name for t in TYPES] == ["http", "kafka", "log"]
    # With no plug-in installed, a service reads the built-in types alone.
    assert job_types.load().known() == ["http", "kafka", "log"]


def test_the_built_in_types_leave_their_strategies_to_the_executor():
    # The job service imports these; what runs them is the executor's own.
    assert all(t.strategy is None for t in job_types.BUILT_IN)


def test_an_unknown_type_names_the_known_ones():
    with pytest.raises(job_types.UnknownJobType) as caught:
        TYPES.validate_payload("ftp", {})

    assert caught.value.known == ["http", "kafka", "log"]
    assert "http, kafka, log" in str(caught.value)
    with pytest.raises(job_types.UnknownJobType):
        TYPES.json_schema("ftp")


@pytest.mark.parametrize("payload", [None, [], "text", 3])
def test_a_payload_must_be_an_object(payload):
    assert errors_of("log", payload) == [("payload", "must be a JSON object")]


@pytest.mark.parametrize("name", TYPES.known())
def test_each_types_schema_is_camel_case_and_its_examples_are_valid(name):
    schema = TYPES.json_schema(name)

    assert schema["additionalProperties"] is False
    assert all("_" not in key for key in schema["properties"])
    for example in schema["examples"]:
        TYPES.validate_payload(name, example)


# --- size and hostile values -------------------------------------------------------------------


def test_a_payload_up_to_64_kib_is_accepted_and_one_byte_more_is_not():
    def http_with_body_of(size: int) -> dict:
        payload = {"url": URL, "bodyText": ""}
        overhead = len(json.dumps(payload, separators=(",", ":")).encode())
        payload["bodyText"] = "é" * ((size - overhead) // 2) + "x" * ((size - overhead) % 2)
        return payload

    at_limit = http_with_body_of(job_types.MAX_PAYLOAD_BYTES)
    TYPES.validate_payload("http", at_limit)  # counted in UTF-8 bytes, not characters

    [(field, message)] = errors_of("http", http_with_body_of(job_types.MAX_PAYLOAD_BYTES + 1))
    assert field == "payload"
    assert str(job_types.MAX_PAYLOAD_BYTES) in message


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"message": "a\x00b"}, "payload.message"),
        ({"message": "\ud800"}, "payload.message"),
        ({"url": URL, "body": {"k": float("nan")}}, "payload.body"),
        ({"url": URL, "body": [float("inf")]}, "payload.body"),
        ({"url": URL, "headers": {"X-A": "\x00"}}, "payload.headers"),
    ],
)
def test_nul_bytes_lone_surrogates_and_nan_are_refused(payload, field):
    type_name = "log" if "message" in payload else "http"

    assert field in fields_of(type_name, payload)


# --- http ----------------------------------------------------------------------------------------


def test_http_defaults_are_filled_in_with_camel_case_keys():
    assert TYPES.validate_payload("http", {"url": URL}) == {
        "url": URL,
        "method": "POST",
        "headers": {},
        "body": None,
        "bodyText": None,
        "timeoutSeconds": 30.0,
        "expectedStatus": ["2xx"],
    }


def test_http_accepts_field_names_as_well():
    payload = TYPES.validate_payload(
        "http", {"url": URL, "timeout_s": 5, "body_text": "hi", "expected_status": ["204"]}
    )

    assert (payload["timeoutSeconds"], payload["bodyText"], payload["expectedStatus"]) == (
        5.0, "hi", ["204"],
    )  # fmt: skip


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/file",
        "file:///etc/passwd",
        "example.com/hook",
        "https://",
        "https://user:secret@example.com/",
        "https://example.com:0/",
        "https://example.com:99999/",
        "https://exa mple.com/",
        "https://example.com/\nInjected: 1",
        "https://example.com/" + "a" * job_types.MAX_URL_LENGTH,
        "",
    ],
)
def test_http_refuses_urls_it_cannot_or_must_not_call(url):
    assert fields_of("http", {"url": url}) == ["payload.url"]


@pytest.mark.parametrize(
    "url", ["http://example.com", "https://example.com:8443/a/b?c=d#e", "https://[::1]:8080/"]
)
def test_http_accepts_http_and_https_urls(url):
    assert TYPES.validate_payload("http", {"url": url})["url"] == url


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_http_methods(method):
    assert TYPES.validate_payload("http", {"url": URL, "method": method})["method"] == method


@pytest.mark.parametrize("method", ["get", "HEAD", "CONNECT", "TRACE", ""])
def test_http_refuses_other_methods(method):
    assert fields_of("http", {"url": URL, "method": method}) == ["payload.method"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "evil.example"},
        {"content-length": "1"},
        {"Webhook-Signature": "v1,forged"},
        {"Idempotency-Key": "mine"},
        {"X-A": "1", "x-a": "2"},
        {"X-A": "line\r\nInjected: 1"},
        {"Bad Name": "v"},
        {"X-Long": "v" * (job_types.MAX_HEADER_VALUE_LENGTH + 1)},
        {f"X-{i}": "v" for i in range(job_types.MAX_HEADERS + 1)},
        {f"X-{i}": "v" * 7000 for i in range(3)},  # over 16 KiB together
    ],
    ids=[
        "host", "framing", "signature", "idempotency-key", "twice", "crlf", "bad-name",
        "long-value", "too-many", "too-large",
    ],
)  # fmt: skip
def test_http_refuses_headers_that_would_break_or_forge_the_request(headers):
    assert fields_of("http", {"url": URL, "headers": headers})[0].startswith("payload.headers")


def test_http_body_is_json_or_text_and_never_with_get():
    assert fields_of("http", {"url": URL, "method": "GET", "body": {"a": 1}}) == ["payload.body"]
    assert fields_of("http", {"url": URL, "method": "GET", "bodyText": "x"}) == ["payload.bodyText"]
    assert fields_of("http", {"url": URL, "body": {"a": 1}, "bodyText": "x"}) == [
        "payload.bodyText"
    ]
    for body in ({"a": [1, 2.5, None, True]}, [1], "text", 3, False):
        assert TYPES.validate_payload("http", {"url": URL, "body": body})["body"] == body


@pytest.mark.parametrize("timeout", [0, 0.5, 3601, "30s"])
def test_http_timeout_bounds(timeout):
    assert fields_of("http", {"url": URL, "timeoutSeconds": timeout}) == ["payload.timeoutSeconds"]


@pytest.mark.parametrize(
    ("patterns", "status", "accepted"),
    [
        (["2xx"], 200, True),
        (["2xx"], 299, True),
        (["2xx"], 301, False),
        (["2XX", "404"], 404, True),
        (["204"], 200, False),
        (["3xx"], 302, True),
    ],
)
def test_http_expected_status(patterns, status, accepted):
    model = TYPES.parse_payload("http", {"url": URL, "expectedStatus": patterns})

    assert isinstance(model, job_types.HttpPayload)
    assert model.accepts(status) is accepted


@pytest.mark.parametrize("patterns", [[], ["6xx"], ["2x"], ["20"], ["abc"], ["2xx"] * 21])
def test_http_refuses_malformed_expected_status(patterns):
    assert fields_of("http", {"url": URL, "expectedStatus": patterns})[0].startswith(
        "payload.expectedStatus"
    )


# --- kafka ---------------------------------------------------------------------------------------


def test_kafka_defaults():
    assert TYPES.validate_payload("kafka", {"topic": "orders.v1", "value": {"id": 1}}) == {
        "topic": "orders.v1",
        "key": None,
        "value": {"id": 1},
        "headers": {},
    }


@pytest.mark.parametrize("value", [None, 0, "text", [1, {"a": None}]])
def test_kafka_value_is_any_json(value):
    payload = {"topic": "t", "value": value}

    assert TYPES.validate_payload("kafka", payload)["value"] == value


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"topic": "bad topic", "value": 1}, "payload.topic"),
        ({"topic": "a/b", "value": 1}, "payload.topic"),
        ({"topic": "t" * 250, "value": 1}, "payload.topic"),
        ({"topic": "", "value": 1}, "payload.topic"),
        ({"topic": "..", "value": 1}, "payload.topic"),
        ({"topic": "t"}, "payload.value"),
        ({"topic": "t", "value": 1, "key": "k" * 1025}, "payload.key"),
        ({"topic": "t", "value": 1, "headers": {"": "v"}}, "payload.headers..[key]"),
        ({"topic": "t", "value": 1, "partition": 3}, "payload.partition"),
    ],
)
def test_kafka_refusals(payload, field):
    assert field in fields_of("kafka", payload)


# --- log -----------------------------------------------------------------------------------------


def test_log_defaults_to_info():
    assert TYPES.validate_payload("log", {"message": "hi"}) == {
        "message": "hi",
        "level": "info",
    }


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"message": ""}, "payload.message"),
        ({"message": "x" * 4097}, "payload.message"),
        ({"message": "x", "level": "critical"}, "payload.level"),
        ({"message": "x", "level": "INFO"}, "payload.level"),
        ({}, "payload.message"),
        ({"message": "x", "extra": 1}, "payload.extra"),
    ],
)
def test_log_refusals(payload, field):
    assert fields_of("log", payload) == [field]


def test_every_error_is_reported():
    assert sorted(fields_of("log", {"message": "", "level": "loud", "x": 1})) == [
        "payload.level", "payload.message", "payload.x",
    ]  # fmt: skip


# --- the canonical form --------------------------------------------------------------------------

MESSAGES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=200,
)


@given(
    message=MESSAGES,
    level=st.sampled_from(["debug", "info", "warning", "error"]),
    timeout=st.floats(min_value=1, max_value=3600),
)
def test_the_canonical_form_validates_to_itself(message, level, timeout):
    for type_name, payload in [
        ("log", {"message": message, "level": level}),
        ("http", {"url": URL, "bodyText": message, "timeout_s": timeout}),
        ("kafka", {"topic": "t", "key": message, "value": {"m": message}}),
    ]:
        canonical = TYPES.validate_payload(type_name, payload)
        assert TYPES.validate_payload(type_name, canonical) == canonical
        assert json.loads(json.dumps(canonical)) == canonical


@pytest.mark.parametrize(
    ("name", "alias"),
    [
        ("next_run_at", "nextRunAt"),
        ("timeout_s", "timeoutSeconds"),
        ("misfire_grace_s", "misfireGraceSeconds"),
        ("name", "name"),
        ("status", "status"),  # a name ending in "s" is no unit
        ("body_text", "bodyText"),
    ],
)
def test_keys_are_camel_case_with_units_spelled_out(name, alias):
    assert schemas.camel(name) == alias
