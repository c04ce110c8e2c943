"""`libs.contracts.schemas.StrictModel`: what a typo or a hostile client could slip into a request
body is refused, as a model and through FastAPI (422 problem documents naming the field)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar

import fastapi
import httpx
import pytest
from pydantic import Field, ValidationError

from libs.contracts import problems, schemas
from libs.infra import web
from libs.infra.config import ServiceSettings

UNUSED_DATABASE_URL = "postgresql://unused@127.0.0.1/unused"  # never connected to


class Item(schemas.StrictModel):
    name: str
    ratio: float = 1.0
    at: schemas.UtcDateTime | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)


def nested_lists(depth: int) -> Any:
    """A string inside `depth` levels of lists."""
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def nested_dicts(depth: int) -> Any:
    """A string inside `depth` levels of objects."""
    value: Any = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


def refusal(**fields: Any) -> list[tuple[tuple[Any, ...], str]]:
    """The (location, type) of each error of validating `fields` as an `Item`."""
    with pytest.raises(ValidationError) as caught:
        Item.model_validate({"name": "n", **fields})
    return [(error["loc"], error["type"]) for error in caught.value.errors()]


# --- the model --------------------------------------------------------------------------------


def test_a_clean_item_is_accepted():
    item = Item.model_validate(
        {"name": "n", "ratio": 0.5, "extra": {"a": [1, 2.5, None, {"b": "c"}]}, "tags": ["t"]}
    )

    assert item.extra == {"a": [1, 2.5, None, {"b": "c"}]}


def test_an_unknown_field_is_refused():
    assert refusal(colour="red") == [(("colour",), "extra_forbidden")]


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), float("-inf"), "NaN", "Infinity", "-inf"]
)
def test_nan_and_infinity_are_refused_as_a_float(value):
    [(location, _type)] = refusal(ratio=value)

    assert location == ("ratio",)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize(
    "place",
    [
        lambda v: {"k": v},
        lambda v: {"k": [1, v]},
        lambda v: {"k": {"deeper": {"still": v}}},
    ],
    ids=["value", "in-list", "deep"],
)
def test_nan_and_infinity_are_refused_inside_free_form_json(value, place):
    assert [location for location, _ in refusal(extra=place(value))] == [("extra",)]


def test_a_date_time_without_an_offset_is_refused():
    [(location, error)] = refusal(at="2026-03-01T10:00:00")

    assert (location, error) == (("at",), "timezone_aware")


def test_a_naive_datetime_object_is_refused():
    [(location, _)] = refusal(at=datetime(2026, 3, 1, 10, 0))  # naive on purpose

    assert location == ("at",)


@pytest.mark.parametrize(
    "value",
    ["2026-03-01T10:00:00+02:00", datetime(2026, 3, 1, 10, tzinfo=timezone(timedelta(hours=2)))],
    ids=["text", "datetime"],
)
def test_a_date_time_with_an_offset_is_converted_to_utc(value):
    item = Item(name="n", at=value)

    assert item.at == datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    assert item.at.utcoffset() == timedelta(0)
    assert item.model_dump(mode="json")["at"] == "2026-03-01T08:00:00Z"


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_date_time_with_no_utc_equivalent_is_refused(value):
    [(location, error)] = refusal(at=value)

    assert (location, error) == (("at",), "value_error")


BAD_TEXT = {"nul": "a\x00b", "lone-surrogate": "a\ud800b", "low-surrogate": "\udfff"}


@pytest.mark.parametrize("text", BAD_TEXT.values(), ids=BAD_TEXT.keys())
@pytest.mark.parametrize(
    ("field", "place"),
    [
        ("name", lambda t: t),
        ("tags", lambda t: ["ok", t]),
        ("extra", lambda t: {"k": t}),
        ("extra", lambda t: {t: "v"}),
        ("extra", lambda t: {"k": ["ok", {"deeper": t}]}),
        ("extra", lambda t: {"k": {t: 1}}),
    ],
    ids=["string-field", "list-item", "dict-value", "dict-key", "deep-value", "deep-key"],
)
def test_nul_bytes_and_lone_surrogates_are_refused_anywhere(text, field, place):
    assert [location[0] for location, _ in refusal(**{field: place(text)})] == [field]


def test_a_surrogate_pair_written_as_one_character_is_accepted():
    assert Item(name="\U0001f600").name == "\U0001f600"


@pytest.mark.parametrize("nested", [nested_lists, nested_dicts], ids=["lists", "objects"])
def test_nesting_deeper_than_max_depth_is_refused(nested):
    Item(name="n", extra={"k": nested(schemas.MAX_DEPTH - 1)})  # the field itself is a level

    assert [location for location, _ in refusal(extra={"k": nested(schemas.MAX_DEPTH)})] == [
        ("extra",)
    ]


def test_a_list_field_nested_beyond_max_depth_is_refused():
    class Deep(schemas.StrictModel):
        value: Any

    Deep(value=nested_lists(schemas.MAX_DEPTH))
    with pytest.raises(ValidationError, match="nested deeper"):
        Deep(value=nested_lists(schemas.MAX_DEPTH + 1))


# --- through FastAPI --------------------------------------------------------------------------


class ProbeSettings(ServiceSettings):
    service_name: ClassVar[str] = "probe"


@asynccontextmanager
async def no_resources(_app: fastapi.FastAPI) -> AsyncIterator[dict[str, web.Check]]:
    yield {}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    router = fastapi.APIRouter()

    @router.post("/items")
    async def create_item(item: Item) -> dict[str, Any]:
        return item.model_dump(mode="json")

    app = web.create_app(
        ProbeSettings(database_url=UNUSED_DATABASE_URL),
        title="Probe",
        lifespan=no_resources,
        routers=[router],
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as client:
        yield client


async def post_json_text(client: httpx.AsyncClient, text: str) -> httpx.Response:
    return await client.post(
        "/items", content=text.encode(), headers={"content-type": "application/json"}
    )


async def test_a_clean_body_is_accepted(client):
    response = await post_json_text(
        client, '{"name": "n", "at": "2026-03-01T10:00:00+02:00", "extra": {"a": [1.5]}}'
    )

    assert response.status_code == 200
    assert response.json()["at"] == "2026-03-01T08:00:00Z"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"name": "n", "colour": "red"}', "body.colour"),
        ('{"name": "n", "ratio": NaN}', "body.ratio"),
        ('{"name": "n", "ratio": Infinity}', "body.ratio"),
        ('{"name": "n", "ratio": -Infinity}', "body.ratio"),
        ('{"name": "n", "extra": {"k": [NaN]}}', "body.extra"),
        ('{"name": "n", "at": "2026-03-01T10:00:00"}', "body.at"),
        ('{"name": "a\\u0000b"}', "body.name"),
        ('{"name": "\\ud800"}', "body.name"),
        ('{"name": "n", "tags": ["\\ud800"]}', "body.tags"),
        ('{"name": "n", "extra": {"\\u0000": 1}}', "body.extra"),
        ('{"name": "n", "extra": {"k": {"j": "\\udc00"}}}', "body.extra"),
        ('{"name": "n", "extra": {"k": ' + "[" * 40 + "]" * 40 + "}}", "body.extra"),
    ],
    ids=[
        "unknown-field",
        "nan",
        "infinity",
        "minus-infinity",
        "nan-in-free-form",
        "naive-date-time",
        "nul",
        "lone-surrogate",
        "surrogate-in-list",
        "nul-in-key",
        "surrogate-deep",
        "too-deep",
    ],
)
async def test_a_refused_body_is_a_422_problem_naming_the_field(client, text, field):
    response = await post_json_text(client, text)

    assert response.status_code == 422
    assert response.headers["content-type"] == problems.MEDIA_TYPE
    document = response.json()
    assert document["type"] == problems.TYPE_BASE + "validation-failed"
    assert [error["field"] for error in document["errors"]] == [field]
    assert field in document["detail"]
