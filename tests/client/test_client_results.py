"""run / run_with_metadata / validate results against the fake server (docs/protocol.md §4-§7)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from sippet_async import (
    KeysetPage,
    NotFoundError,
    OffsetPage,
    ProtocolError,
    RunResult,
    SippetClient,
    ValidationResult,
)
from sippet_async.testing import FakeSippet, Reply

CONTACT_FIELDS = ["id", "fullName", "phoneE164", "email"]


class Contact(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The contact fields the tests select (§12.6)."""

    id: str
    full_name: str
    phone_e164: str | None = None
    email: str | None = None


class Call(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The call fields the tests select (§12.6)."""

    id: str
    to_e164: str
    status: str


def _records(collection: Any) -> list[dict[str, Any]]:
    """The fake server's records as a list, whether it keeps a list or an id-keyed dict."""
    return list(collection.values()) if isinstance(collection, dict) else list(collection)


async def _create(client: SippetClient, name: str = "Ada Lovelace") -> dict[str, Any]:
    data = await client.run(
        "create_contact",
        input={"fullName": name, "phoneE164": "+15555550123", "email": "ada@example.com"},
        fields=CONTACT_FIELDS,
    )
    assert isinstance(data, dict)
    return data


# -- plain data -------------------------------------------------------------------------


async def test_run_returns_plain_data(client: SippetClient) -> None:
    """Without type=, data is plain JSON: dicts, lists, str (here an offset page object)."""
    data = await client.run("list_contacts", fields=["id", "fullName"],
                            page={"limit": 5, "offset": 0})
    assert type(data) is dict
    assert data["type"] == "offset"
    assert len(data["results"]) == 5
    assert all(set(item) == {"id", "fullName"} for item in data["results"])


async def test_list_calls_is_a_plain_array(client: SippetClient) -> None:
    """list_calls has no pagination: data is a JSON array (§12.6)."""
    data = await client.run("list_calls", fields=["id", "status"])
    assert isinstance(data, list)


# -- typed decoding ---------------------------------------------------------------------


async def test_typed_struct(client: SippetClient) -> None:
    """type=Struct decodes data straight into it."""
    created = await _create(client)
    contact = await client.run("get_contact", input={"id": created["id"]},
                               fields=CONTACT_FIELDS, type=Contact)
    assert contact == Contact(id=created["id"], full_name="Ada Lovelace",
                              phone_e164="+15555550123", email="ada@example.com")


async def test_typed_list_of_structs(client: SippetClient) -> None:
    """type=list[Struct] decodes an array of records."""
    created = await _create(client)
    call = await client.run("create_call", input={"contactId": created["id"],
                                                  "toE164": "+15555550123"},
                            fields=["id", "toE164", "status"], type=Call)
    calls = await client.run("list_calls", fields=["id", "toE164", "status"], type=list[Call])
    assert isinstance(calls, list)
    assert call in calls
    assert all(isinstance(item, Call) for item in calls)


async def test_typed_offset_page(client: SippetClient) -> None:
    """An offset page decodes as OffsetPage[Struct] (§5.2)."""
    page = await client.run("list_contacts", fields=CONTACT_FIELDS,
                            page={"limit": 7, "offset": 3}, type=OffsetPage[Contact])
    assert isinstance(page, OffsetPage)
    assert page.offset == 3
    assert len(page.results) == 7
    assert page.has_more is True
    assert all(isinstance(item, Contact) for item in page.results)


async def test_typed_keyset_page(client: SippetClient) -> None:
    """A keyset page (no offset sent) decodes as KeysetPage[Struct] with a cursor (§5.3)."""
    either: Any = OffsetPage[Contact] | KeysetPage[Contact]  # mypy: a union is no type[T]
    page = await client.run("list_contacts", fields=CONTACT_FIELDS, page={"limit": 4},
                            type=either)
    assert isinstance(page, KeysetPage)
    assert len(page.results) == 4
    assert page.has_more is True
    assert page.next_page
    after = await client.run("list_contacts", fields=CONTACT_FIELDS,
                             page={"limit": 4, "after": page.next_page},
                             type=KeysetPage[Contact])
    assert {c.id for c in after.results}.isdisjoint({c.id for c in page.results})


async def test_typed_mismatch_is_a_protocol_error(client: SippetClient) -> None:
    """data that does not fit type= is a ProtocolError whose path points into $.data."""
    with pytest.raises(ProtocolError) as info:
        await client.run("list_contacts", fields=["id"], page={"limit": 2, "offset": 0},
                         type=list[Contact])
    assert info.value.path.startswith("$.data")


# -- metadata (§3.6) --------------------------------------------------------------------


async def test_run_with_metadata_returns_top_level_metadata(
    server: FakeSippet, client: SippetClient
) -> None:
    """A mutation's top-level metadata comes back beside data (§3.6)."""
    server.push_reply(Reply(
        status=200,
        body=b'{"success": true, "data": {"id": "c1"}, "metadata": {"someString": "created"}}',
        headers={"content-type": "application/json"},
    ))
    result = await client.run_with_metadata("create_contact", input={"fullName": "Ada"},
                                            fields=["id"])
    assert isinstance(result, RunResult)
    assert result.data == {"id": "c1"}
    assert result.metadata == {"someString": "created"}


async def test_run_with_metadata_from_the_server(client: SippetClient) -> None:
    """The fake server's contact mutations expose metadata; metadataFields filters it."""
    created = await client.run_with_metadata(
        "create_contact", input={"fullName": "Ada", "phoneE164": "+15555550123"}, fields=["id"]
    )
    assert set(created.data) == {"id"}
    assert created.metadata == {"operation": "create"}
    updated = await client.run_with_metadata(
        "update_contact", identity=created.data["id"], input={"company": "X"},
        metadata_fields=["someOtherField"],
    )
    assert updated.data == {}
    assert not updated.metadata  # a name the action does not expose is dropped (§3.6)


async def test_run_with_metadata_typed_and_absent(client: SippetClient) -> None:
    """run_with_metadata decodes data with type= and gives metadata None when none is sent."""
    result = await client.run_with_metadata("list_contacts", fields=CONTACT_FIELDS,
                                            page={"limit": 1, "offset": 0},
                                            type=OffsetPage[Contact])
    assert isinstance(result.data, OffsetPage)
    assert result.metadata is None


# -- CRUD round trips -------------------------------------------------------------------


async def test_contact_round_trip(server: FakeSippet, client: SippetClient) -> None:
    """create -> get -> update (raw identity) -> destroy -> get is not_found."""
    created = await _create(client)
    assert created["fullName"] == "Ada Lovelace"
    assert any(r["id"] == created["id"] for r in _records(server.contacts))

    got = await client.run("get_contact", input={"id": created["id"]}, fields=CONTACT_FIELDS)
    assert got == created

    updated = await client.run("update_contact", identity=created["id"],
                               input={"company": "Analytical Engines"},
                               fields=["id", "company"])
    assert updated == {"id": created["id"], "company": "Analytical Engines"}

    destroyed = await client.run("destroy_contact", identity=created["id"])
    assert destroyed == {}
    assert not any(r["id"] == created["id"] for r in _records(server.contacts))
    with pytest.raises(NotFoundError):
        await client.run("get_contact", input={"id": created["id"]}, fields=["id"])


async def test_mutation_without_fields_returns_empty_object(client: SippetClient) -> None:
    """create with no fields returns {} (§3.2, §4)."""
    data = await client.run("create_contact",
                            input={"fullName": "Grace Hopper", "phoneE164": "+15555550124"})
    assert data == {}


async def test_call_round_trip(server: FakeSippet, client: SippetClient) -> None:
    """create_call -> get_call -> end_call -> list_calls shows the ended call."""
    contact = await _create(client)
    call = await client.run("create_call", input={"contactId": contact["id"],
                                                  "toE164": "+15555550123"},
                            fields=["id", "status", "toE164"])
    assert call["toE164"] == "+15555550123"
    got = await client.run("get_call", input={"id": call["id"]}, fields=["id", "status"])
    assert got["id"] == call["id"]
    await client.run("end_call", input={"id": call["id"]})
    calls = await client.run("list_calls", fields=["id", "status"])
    (ended,) = [c for c in calls if c["id"] == call["id"]]
    assert ended["status"] != call["status"]
    assert any(r["id"] == call["id"] for r in _records(server.calls))


# -- validate (§7) ----------------------------------------------------------------------


async def test_validate_ok(server: FakeSippet, client: SippetClient) -> None:
    """A valid payload validates ok, and nothing is persisted."""
    before = len(_records(server.contacts))
    result = await client.validate(
        "create_contact", input={"fullName": "Ada", "phoneE164": "+15555550123"}
    )
    assert isinstance(result, ValidationResult)
    assert result.ok is True
    assert bool(result) is True
    assert result.errors == ()
    assert len(_records(server.contacts)) == before


async def test_validate_invalid_does_not_raise(server: FakeSippet, client: SippetClient) -> None:
    """An invalid payload gives ok=False with typed errors, raises nothing, persists nothing."""
    before = len(_records(server.contacts))
    result = await client.validate("create_contact", input={"phoneE164": "+15555550123"})
    assert result.ok is False
    assert bool(result) is False
    assert result.errors
    first = result.errors[0]
    assert first.type == "invalid_attribute"
    assert "fullName" in first.fields
    assert len(_records(server.contacts)) == before


@pytest.mark.parametrize(
    ("action", "keys", "kind"),
    [
        ("no_such_action", {}, "action_not_found"),
        ("update_contact", {"identity": "00000000-0000-4000-8000-000000000000",
                            "input": {"company": "X"}}, "not_found"),
    ],
)
async def test_validate_request_errors_are_results(
    server: FakeSippet, client: SippetClient, action: str, keys: dict[str, Any], kind: str
) -> None:
    """Request-level and not_found failures from /validate are results, not exceptions."""
    result = await client.validate(action, **keys)
    assert result.ok is False
    assert result.errors[0].type == kind
    assert server.requests[-1].path == "/rpc/public/validate"
