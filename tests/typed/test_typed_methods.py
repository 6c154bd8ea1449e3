"""Every action of the fake server through the typed methods, over real 127.0.0.1 HTTP
(docs/protocol.md §12.6): what is sent, what comes back, and UNSET versus None."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
import pytest

from sippet_async import (
    Call,
    Contact,
    CreateCall,
    CreateContact,
    InvalidInputError,
    NotFoundError,
    ResultTypeError,
    SippetClient,
    UpdateContact,
    UsageError,
)
from sippet_async.testing import FakeSippet, Reply

from .conftest import SEED_CONTACTS

ALL_CONTACT_FIELDS = ["id", "fullName", "phoneE164", "email", "company", "tags", "insertedAt",
                      "updatedAt"]
MISSING_ID = "00000000-0000-4000-8000-00000000dead"


def _last_body(server: FakeSippet) -> dict[str, Any]:
    body = server.requests[-1].json
    assert isinstance(body, dict)
    return body


def _ok(data: bytes) -> Reply:
    return Reply(status=200, body=b'{"success":true,"data":' + data + b"}",
                 headers={"content-type": "application/json"})


# -- contacts -----------------------------------------------------------------------------


async def test_contacts_list_yields_every_contact_typed(
    server: FakeSippet, client: SippetClient
) -> None:
    """contacts.list walks every page into Contact records, selecting every field."""
    contacts = [contact async for contact in client.contacts.list(page_size=10)]
    assert len(contacts) == SEED_CONTACTS
    assert all(type(contact) is Contact for contact in contacts)
    assert {c.id for c in contacts} == {record["id"] for record in server.contacts}
    assert all(isinstance(c.inserted_at, datetime) for c in contacts)
    first = _last_body(server)
    assert first["action"] == "list_contacts"
    assert first["fields"] == ALL_CONTACT_FIELDS
    assert first["page"]["limit"] == 10


async def test_contacts_list_passes_fields_filter_sort_and_limit(
    server: FakeSippet, client: SippetClient
) -> None:
    """fields, filter, sort, page_size and limit reach the request; unselected fields stay
    UNSET."""
    names = [c.full_name async for c in client.contacts.list(
        fields=["id", "fullName"], filter={"company": {"eq": "Acme"}}, sort="-fullName",
        page_size=2, limit=3)]
    assert len(names) == 3
    assert names == sorted(names, reverse=True)
    body = server.requests[0].json
    assert body is not None
    assert (body["fields"], body["filter"], body["sort"]) == (
        ["id", "fullName"], {"company": {"eq": "Acme"}}, "-fullName")
    async for contact in client.contacts.list(fields=["id"], limit=1):
        assert contact.email is msgspec.UNSET
        assert contact.full_name is msgspec.UNSET


async def test_contacts_get_tells_unselected_from_null(
    server: FakeSippet, client: SippetClient
) -> None:
    """A field not selected is UNSET; a selected field the server sends as null is None."""
    nameless = next(r for r in server.contacts if r["email"] is None)
    contact = await client.contacts.get(nameless["id"], fields=["id", "email"])
    assert contact.email is None
    assert contact.full_name is msgspec.UNSET
    assert _last_body(server) == {"action": "get_contact", "input": {"id": nameless["id"]},
                                  "fields": ["id", "email"]}
    full = await client.contacts.get(nameless["id"])
    assert full.full_name == nameless["fullName"]
    assert full.email is None
    assert msgspec.UNSET not in msgspec.structs.astuple(full)


async def test_contacts_get_of_a_missing_id_raises_not_found(client: SippetClient) -> None:
    """get of an id that does not exist raises NotFoundError."""
    with pytest.raises(NotFoundError):
        await client.contacts.get(MISSING_ID)


async def test_contacts_create_sends_only_given_fields(
    server: FakeSippet, client: SippetClient
) -> None:
    """create sends the input camelCased without its UNSET fields and returns the record."""
    contact = await client.contacts.create(
        CreateContact(full_name="Ada Lovelace", phone_e164="+15555550123", tags=("vip",)))
    assert _last_body(server)["input"] == {"fullName": "Ada Lovelace",
                                           "phoneE164": "+15555550123", "tags": ["vip"]}
    assert type(contact) is Contact
    assert (contact.full_name, contact.tags, contact.email) == ("Ada Lovelace", ["vip"], None)
    assert server.contacts[-1]["id"] == contact.id


async def test_contacts_create_sends_an_explicit_none_as_null(
    server: FakeSippet, client: SippetClient
) -> None:
    """None in an input is sent as null (it is a value, unlike UNSET)."""
    contact = await client.contacts.create(
        CreateContact(full_name="Alan", phone_e164="+15555550124", email=None),
        fields=["id", "email"])
    assert _last_body(server)["input"] == {"fullName": "Alan", "phoneE164": "+15555550124",
                                           "email": None}
    assert contact.email is None
    assert contact.full_name is msgspec.UNSET


async def test_contacts_create_refused_raises_invalid_input(client: SippetClient) -> None:
    """The server's validation errors raise InvalidInputError as with run."""
    with pytest.raises(InvalidInputError):
        await client.contacts.create(CreateContact(full_name="Ada", phone_e164="555"))


async def test_contacts_update_changes_what_is_given(
    server: FakeSippet, client: SippetClient
) -> None:
    """update sends identity and only the given input; None clears an attribute."""
    record = next(r for r in server.contacts if r["company"] is not None)
    contact = await client.contacts.update(
        record["id"], UpdateContact(full_name="Grace H.", company=None))
    assert _last_body(server)["identity"] == record["id"]
    assert _last_body(server)["input"] == {"fullName": "Grace H.", "company": None}
    assert (contact.full_name, contact.company, contact.phone_e164) == (
        "Grace H.", None, record["phoneE164"])


async def test_contacts_update_of_a_missing_id_raises_not_found(client: SippetClient) -> None:
    """update of an id that does not exist raises NotFoundError."""
    with pytest.raises(NotFoundError):
        await client.contacts.update(MISSING_ID, UpdateContact(company="Acme"))


async def test_contacts_destroy_deletes_and_returns_none(
    server: FakeSippet, client: SippetClient
) -> None:
    """destroy removes the record; destroying a missing one succeeds too (§3.5)."""
    victim = server.contacts[0]["id"]
    assert await client.contacts.destroy(victim) is None
    assert victim not in {r["id"] for r in server.contacts}
    assert _last_body(server) == {"action": "destroy_contact", "identity": victim}
    assert await client.contacts.destroy(victim) is None


async def test_a_dict_input_is_refused_before_any_request(
    server: FakeSippet, client: SippetClient
) -> None:
    """An input that is not the method's input Struct is a UsageError, raised before I/O."""
    with pytest.raises(UsageError, match="CreateContact"):
        await client.contacts.create({"fullName": "Ada"})  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="UpdateContact"):
        await client.contacts.update(MISSING_ID, CreateContact(  # type: ignore[arg-type]
            full_name="Ada", phone_e164="+15555550123"))
    assert server.requests == []


# -- calls --------------------------------------------------------------------------------


async def test_calls_create_get_list_and_end(server: FakeSippet, client: SippetClient) -> None:
    """calls.create, get, list and end run their actions and return Call records."""
    contact_id = server.contacts[0]["id"]
    call = await client.calls.create(CreateCall(to_e164="+15555550199", contact_id=contact_id))
    assert type(call) is Call
    assert (call.to_e164, call.contact_id, call.status) == ("+15555550199", contact_id, "queued")
    assert _last_body(server)["input"] == {"toE164": "+15555550199", "contactId": contact_id}
    other = await client.calls.create(CreateCall(to_e164="+15555550198"))
    assert other.contact_id is None
    assert "contactId" not in _last_body(server)["input"]

    fetched = await client.calls.get(call.id, fields=["id", "status"])
    assert (fetched.id, fetched.status, fetched.to_e164) == (call.id, "queued", msgspec.UNSET)

    listed = [c async for c in client.calls.list(sort="toE164")]
    assert [c.to_e164 for c in listed] == ["+15555550198", "+15555550199"]
    assert "page" not in _last_body(server)  # list_calls takes no page (§1.3)

    assert await client.calls.end(call.id) is None
    assert _last_body(server) == {"action": "end_call", "input": {"id": call.id}}
    assert (await client.calls.get(call.id)).status == "completed"


async def test_calls_get_and_end_of_a_missing_id_raise_not_found(client: SippetClient) -> None:
    """get_call and end_call of an id that does not exist raise NotFoundError."""
    with pytest.raises(NotFoundError):
        await client.calls.get(MISSING_ID)
    with pytest.raises(NotFoundError):
        await client.calls.end(MISSING_ID)


# -- the caller's type disagrees ------------------------------------------------------------


async def test_a_record_that_does_not_fit_raises_result_type_error(
    server: FakeSippet, client: SippetClient
) -> None:
    """A valid reply whose record does not fit Contact names the path and the type."""
    server.push_reply(_ok(b'{"id":"c1","insertedAt":"yesterday"}'))
    with pytest.raises(ResultTypeError) as info:
        await client.contacts.get("c1")
    error = info.value
    assert (error.path, error.expected, error.type, error.status) == (
        "$.data.insertedAt", "datetime", Contact, 200)
    assert "caller's type" in str(error)


async def test_a_page_record_that_does_not_fit_raises_result_type_error(
    server: FakeSippet, client: SippetClient
) -> None:
    """Inside a page, the path points at the record's field, below the page's results."""
    server.push_reply(_ok(b'{"type":"keyset","results":[{"id":"c1","tags":"vip"}],'
                          b'"hasMore":false}'))
    with pytest.raises(ResultTypeError) as info:
        async for _ in client.contacts.list():
            pass
    assert (info.value.path, info.value.expected) == ("$.data.results[0].tags",
                                                      "list[str] | None")


async def test_resources_are_made_once_per_client(server: FakeSippet,
                                                  client: SippetClient) -> None:
    """client.contacts is the same object on every access, and each client has its own."""
    assert client.contacts is client.contacts
    assert client.calls is client.calls
    async with SippetClient("sk_test_other_0123456789", base_url=server.url) as other:
        assert other.contacts is not client.contacts
