"""Typed decoding of ``data`` into msgspec Structs, lists and pages (docs/protocol.md §4, §5)."""

from __future__ import annotations

import builtins
from typing import Any

import msgspec
import pytest

from sippet_async._errors import NotFoundError, ProtocolError, ResultTypeError
from sippet_async._models import KeysetPage, OffsetPage, RunResult
from sippet_async._protocol import HttpResponse, decode_run
from sippet_async._resources import Contact as PublicContact

from ._wire import Sample, load

SAMPLES = {sample.name: sample for group in ("success", "errors") for sample in load(group)}


class Contact(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The fake server's contact (§12.6), with every field optional as a selection may omit it."""

    id: str
    full_name: str | None = None
    phone_e164: str | None = None
    email: str | None = None
    company: str | None = None
    tags: list[str] = []
    inserted_at: str | None = None
    updated_at: str | None = None


class Call(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The fake server's call (§12.6)."""

    id: str
    contact_id: str | None
    to_e164: str
    status: str
    inserted_at: str


def _ok(data: str) -> HttpResponse:
    body = b'{"success":true,"data":' + data.encode() + b"}"
    return HttpResponse(status=200, headers={}, body=body)


def _decode(name: str, type: Any) -> Any:
    sample: Sample = SAMPLES[name]
    return decode_run(sample.action, sample.response, type).data


def test_plain_array_into_list_of_structs() -> None:
    """An unpaginated list decodes into list[Call] (§4)."""
    calls = _decode("success/list_calls_plain_array", list[Call])
    assert [call.status for call in calls] == ["completed", "queued"]
    assert calls[1].contact_id is None
    assert all(isinstance(call, Call) for call in calls)


def test_record_into_struct() -> None:
    """A get-style read decodes into one Struct, camelCase keys to snake attributes."""
    contact = _decode("success/get_contact", Contact)
    assert contact == Contact(
        id="5a1e3c2b-7d4f-4b8e-8c0a-1f2e3d4c5b6a",
        full_name="Ada Lovelace",
        phone_e164="+15555550123",
        email=None,
        company="Analytical Engines Ltd",
        tags=["vip", "math"],
        inserted_at="2024-05-01T12:00:00Z",
        updated_at="2024-05-02T08:15:00Z",
    )


def test_unknown_keys_are_ignored_by_structs() -> None:
    """Keys the Struct does not declare are skipped, not an error (be liberal)."""
    contact = _decode("success/unknown_keys_ignored", Contact)
    assert contact.full_name == "Zoë Ångström 🚀"


def test_offset_page_into_generic_page() -> None:
    """An offset page decodes into OffsetPage[Contact] with every §5.2 field."""
    page = _decode("success/list_contacts_offset_page", OffsetPage[Contact])
    assert isinstance(page, OffsetPage)
    assert [c.full_name for c in page.results] == ["Ada Lovelace", "Alan Turing"]
    assert (page.has_more, page.limit, page.offset, page.count) == (True, 2, 40, None)
    counted = _decode("success/list_contacts_offset_last_page_counted", OffsetPage[Contact])
    assert (counted.has_more, counted.count) == (False, 41)


def test_keyset_page_keeps_cursors_byte_for_byte() -> None:
    """Keyset cursors with + / = come back unchanged, to be passed back as is (§5.3)."""
    page = _decode("success/list_contacts_keyset_page", KeysetPage[Contact])
    assert isinstance(page, KeysetPage)
    assert page.after == "g2wAAAABbQAAACQ+Zm9v/2Jhcg=="
    assert page.before is None
    assert page.previous_page == "g2wAAAABbQAAACQ1YTFl+3c="
    assert page.next_page == "g2wAAAABbQAAACQ5ZDhj/+a/Yg=="
    empty = _decode("success/list_contacts_keyset_empty_page", KeysetPage[Contact])
    assert (empty.results, empty.next_page, empty.previous_page) == ([], None, None)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("success/list_contacts_offset_page", OffsetPage),
        ("success/list_contacts_keyset_page", KeysetPage),
    ],
)
def test_page_union_dispatches_on_type(name: str, cls: type) -> None:
    """OffsetPage | KeysetPage picks the class from data.type (§5.1: always read it)."""
    page = _decode(name, OffsetPage[Contact] | KeysetPage[Contact])
    assert type(page) is cls


def test_page_of_the_wrong_kind_is_a_protocol_error() -> None:
    """A keyset page where an offset page was expected fails at $.data.type."""
    with pytest.raises(ProtocolError) as info:
        _decode("success/list_contacts_keyset_page", OffsetPage[Contact])
    assert info.value.path == "$.data.type"


def test_metadata_rides_beside_typed_data() -> None:
    """A mutation's top-level metadata is returned next to the typed data (§3.6)."""
    sample = SAMPLES["success/create_contact_with_metadata"]
    result = decode_run(sample.action, sample.response, Contact)
    assert result.data.full_name == "Ada Lovelace"
    assert result.metadata == {"someString": "created", "processedAt": "2024-05-01T12:00:00Z"}


# The last column: a ResultTypeError when the reply is a valid envelope and only the
# caller's part of the type fails; a plain ProtocolError when the data is malformed whatever
# the caller asked for (a number beyond range) or the library's own page shape fails.
@pytest.mark.parametrize(
    ("data", "type", "path", "cls"),
    [
        ('[{"id": "a", "fullName": 42}]', list[Contact], "$.data[0].fullName", ResultTypeError),
        # msgspec points at the object; the field it lacks is named too.
        ('[{"id": "a"}, {"fullName": "no id"}]', list[Contact], "$.data[1].id",
         ResultTypeError),
        ('{"id": "a"}', list[Contact], "$.data", ResultTypeError),
        ('[{"id": "a"}]', Contact, "$.data", ResultTypeError),
        ("null", Contact, "$.data", ResultTypeError),
        ('{"id": "a", "tags": ["x", 1]}', Contact, "$.data.tags[1]", ResultTypeError),
        (
            '{"type": "offset", "results": [{"id": 1}], "hasMore": false}',
            OffsetPage[Contact],
            "$.data.results[0].id",
            ResultTypeError,
        ),
        (
            '{"type": "keyset", "results": [], "nextPage": 7}',
            KeysetPage[Contact],
            "$.data.nextPage",
            ProtocolError,
        ),
        ('{"type": "offset", "results": [], "limit": 1e400}', OffsetPage[Contact], "$.data.limit",
         ProtocolError),
    ],
)
def test_type_mismatch_is_protocol_error_with_path(data: str, type: Any, path: str,
                                                    cls: type[ProtocolError]) -> None:
    """data that does not fit the requested type gives ProtocolError with the body path;
    ResultTypeError exactly when it is the caller's type that disagrees."""
    with pytest.raises(ProtocolError) as info:
        decode_run("list_contacts", _ok(data), type)
    assert builtins.type(info.value) is cls
    assert info.value.path == path
    assert info.value.status == 200
    assert "list_contacts" in str(info.value)
    assert isinstance(info.value.__cause__, msgspec.ValidationError | msgspec.DecodeError)


@pytest.mark.parametrize(
    ("data", "type", "path", "expected"),
    [
        ('{"id": "a", "insertedAt": "yesterday"}', PublicContact, "$.data.insertedAt",
         "datetime"),
        ('{"id": "a", "email": 3}', PublicContact, "$.data.email", "str | None"),
        ('[{"id": "a"}, {"id": "b", "tags": "vip"}]', list[PublicContact], "$.data[1].tags",
         "list[str] | None"),
        ('{"type": "keyset", "results": [{"id": 5}]}',
         OffsetPage[PublicContact] | KeysetPage[PublicContact] | list[PublicContact],
         "$.data.results[0].id", "str"),
        ('[{"fullName": "no id"}]', list[Contact], "$.data[0].id", "str"),
    ],
)
def test_result_type_error_names_path_and_expected_type(data: str, type: Any, path: str,
                                                        expected: str) -> None:
    """ResultTypeError names the field path, the type declared there and the caller's type,
    and says it is the caller's type that disagrees."""
    with pytest.raises(ResultTypeError) as info:
        decode_run("get_contact", _ok(data), type)
    error = info.value
    assert (error.path, error.expected, error.type) == (path, expected, type)
    assert path in str(error)
    assert f"expected {expected}," in str(error)
    assert "caller's type" in str(error)


def test_without_a_type_data_is_plain_json() -> None:
    """With no type, data comes back as plain Python values."""
    result: RunResult[Any] = decode_run("list_calls", _ok('[{"a": [1, 2.5, null, true, "x"]}]'))
    assert result.data == [{"a": [1, 2.5, None, True, "x"]}]


def test_error_envelope_raises_before_typed_decoding() -> None:
    """A success:false envelope raises its RpcError even when a type was requested."""
    sample = SAMPLES["errors/not_found"]
    with pytest.raises(NotFoundError):
        decode_run(sample.action, sample.response, Contact)
