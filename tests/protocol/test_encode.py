"""encode_payload: exactly the keys given, top-level names camelCased (docs/protocol.md §3.1)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from sippet_async._errors import UsageError
from sippet_async._protocol import encode_payload, is_read_action


def _sent(action: str, **keys: Any) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(encode_payload(action, keys))
    return decoded


@pytest.mark.parametrize(
    ("keys", "wire"),
    [
        ({"action": "list_calls"}, {"action": "list_calls"}),
        (
            {"action": "list_contacts", "fields": ["id", "fullName"], "page": {"limit": 20}},
            {"action": "list_contacts", "fields": ["id", "fullName"], "page": {"limit": 20}},
        ),
        (
            {
                "action": "create_contact",
                "input": {"fullName": "Ada", "phoneE164": "+15555550123"},
                "metadata_fields": ["someString"],
            },
            {
                "action": "create_contact",
                "input": {"fullName": "Ada", "phoneE164": "+15555550123"},
                "metadataFields": ["someString"],
            },
        ),
        (
            {"action": "get_contact_by_email", "get_by": {"email": "a@b.c"}, "fields": ["id"]},
            {"action": "get_contact_by_email", "getBy": {"email": "a@b.c"}, "fields": ["id"]},
        ),
        (
            {
                "action": "update_contact",
                "identity": "5a1e3c2b-7d4f-4b8e-8c0a-1f2e3d4c5b6a",
                "input": {"company": "X"},
            },
            {
                "action": "update_contact",
                "identity": "5a1e3c2b-7d4f-4b8e-8c0a-1f2e3d4c5b6a",
                "input": {"company": "X"},
            },
        ),
        (
            {
                "action": "list_contacts",
                "fields": ["id", {"calls": ["id", "status"]}],
                "filter": {"and": [{"fullName": {"eq": "Ada"}}, {"tags": {"isNil": False}}]},
                "sort": ["-insertedAt", "++fullName"],
                "page": {"limit": 2, "after": "g2+/a="},
                "tenant": "org_1",
            },
            {
                "action": "list_contacts",
                "fields": ["id", {"calls": ["id", "status"]}],
                "filter": {"and": [{"fullName": {"eq": "Ada"}}, {"tags": {"isNil": False}}]},
                "sort": ["-insertedAt", "++fullName"],
                "page": {"limit": 2, "after": "g2+/a="},
                "tenant": "org_1",
            },
        ),
        (
            {"action": "destroy_contact", "identity": {"email": "a@b.c"}},
            {"action": "destroy_contact", "identity": {"email": "a@b.c"}},
        ),
    ],
)
def test_encode_sends_exactly_the_given_keys(keys: dict[str, Any], wire: dict[str, Any]) -> None:
    """Only the keys given appear, top-level names camelCased (metadataFields, getBy)."""
    assert _sent(**keys) == wire


def test_encode_does_not_rename_values_or_nested_keys() -> None:
    """Nested keys and values go out verbatim: only top-level names are cased (§3.1, §3.7, §8)."""
    sent = _sent(
        action="create_contact",
        input={"full_name": "Ada", "nested_map": {"snake_key": "snake_value"}},
        filter={"phone_e164": {"eq": "in_progress"}},
    )
    assert sent["input"] == {"full_name": "Ada", "nested_map": {"snake_key": "snake_value"}}
    assert sent["filter"] == {"phone_e164": {"eq": "in_progress"}}


def test_encode_never_sends_snake_case_top_level_names() -> None:
    """metadata_fields and get_by never appear under their Python names."""
    body = encode_payload("x", {"metadata_fields": ["a"], "get_by": {"id": "1"}})
    assert b"metadata_fields" not in body
    assert b"get_by" not in body
    assert b'"metadataFields":["a"]' in body
    assert b'"getBy":{"id":"1"}' in body


def test_encode_keeps_unicode_and_cursor_characters() -> None:
    """Cursors with + / = and non-ASCII text survive the round trip unchanged (§5.3)."""
    cursor = "g2wAAAABbQAAACQ+Zm9v/2Jhcg=="
    sent = _sent(action="list_contacts", page={"after": cursor}, input={"fullName": "Zoë 🚀"})
    assert sent["page"]["after"] == cursor
    assert sent["input"]["fullName"] == "Zoë 🚀"


def test_encode_is_compact_utf8_json() -> None:
    """The body is UTF-8 JSON bytes with the action first."""
    body = encode_payload("list_calls", {"fields": ["id"]})
    assert isinstance(body, bytes)
    assert body == b'{"action":"list_calls","fields":["id"]}'


@pytest.mark.parametrize(
    ("action", "read"),
    [
        ("list_contacts", True),
        ("list_calls", True),
        ("get_contact", True),
        ("get_call", True),
        ("create_contact", False),
        ("update_contact", False),
        ("destroy_contact", False),
        ("end_call", False),
        ("create_call", False),
        ("listing_thing", False),
        ("getaway", False),
    ],
)
def test_is_read_action(action: str, read: bool) -> None:
    """list_* and get_* are reads, everything else a write (§12.5)."""
    assert is_read_action(action) is read


@pytest.mark.parametrize(
    ("keys", "path"),
    [
        ({"input": {"score": float("nan")}}, "input.score"),
        ({"input": {"tags": [1.0, {"weight": float("inf")}]}}, "input.tags[1].weight"),
        ({"filter": {"score": {"gt": float("-inf")}}}, "filter.score.gt"),
        ({"get_by": {"n": float("nan")}}, "get_by.n"),
        ({"input": {"pair": (1.0, float("nan")), "other": None}}, "input.pair[1]"),
    ],
)
def test_nan_and_infinity_are_refused_with_their_path(keys: dict[str, Any], path: str) -> None:
    """NaN and ±Infinity anywhere raise UsageError naming the key path, not null (§3.7)."""
    with pytest.raises(UsageError) as info:
        encode_payload("create_contact", keys)
    assert f"create_contact: {path} is " in str(info.value)


def test_nan_inside_a_struct_input_is_refused() -> None:
    """Inputs given as msgspec Structs are checked too."""

    class Score(msgspec.Struct):
        value: float

    with pytest.raises(UsageError, match=r"input\.score\.value"):
        encode_payload("create_contact", {"input": {"score": Score(float("nan")), "n": None}})


def test_null_and_finite_numbers_are_sent_as_given() -> None:
    """A real null stays null; finite floats are untouched."""
    body = encode_payload("create_contact", {"input": {"email": None, "score": 1.5}})
    assert msgspec.json.decode(body) == {"action": "create_contact",
                                         "input": {"email": None, "score": 1.5}}


def test_a_struct_input_is_sent_by_its_wire_names_without_unset_fields() -> None:
    """``input`` may be an input Struct: camelCase names, UNSET left out, None sent as null."""
    from sippet_async._resources import CreateContact, UpdateContact

    sent = _sent("create_contact",
                 input=CreateContact(full_name="Ada", phone_e164="+15555550123", tags=("x",)))
    assert sent == {"action": "create_contact",
                    "input": {"fullName": "Ada", "phoneE164": "+15555550123", "tags": ["x"]}}
    assert _sent("update_contact", identity="c1", input=UpdateContact(email=None)) == {
        "action": "update_contact", "identity": "c1", "input": {"email": None}}


def test_a_struct_is_no_mapping_for_the_other_keys() -> None:
    """Only ``input`` takes a Struct; ``filter``, ``page`` and ``get_by`` stay mappings."""

    class Page(msgspec.Struct):
        limit: int

    with pytest.raises(UsageError, match="page must be a mapping"):
        encode_payload("list_contacts", {"page": Page(3)})


def test_nan_in_a_top_level_struct_input_is_refused() -> None:
    """A NaN inside an input Struct is refused with its path, like one inside a dict."""

    class Score(msgspec.Struct):
        value: float

    with pytest.raises(UsageError, match=r"input\.value"):
        encode_payload("create_contact", {"input": Score(float("nan"))})
