"""Each action's success shape on /run and /validate (docs/protocol.md §3, §4, §7, §12.6)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sippet_async.testing import FakeSippet

from ._support import SEEDED, Rpc

ADA = {"fullName": "Ada Lovelace", "phoneE164": "+447700900123"}
CONTACT_FIELDS = ["id", "fullName", "phoneE164", "email", "company", "tags", "insertedAt"]


async def create(rpc: Rpc, **input_: Any) -> dict[str, Any]:
    envelope = await rpc(
        {"action": "create_contact", "input": {**ADA, **input_}, "fields": CONTACT_FIELDS}
    )
    assert envelope["success"] is True, envelope
    data: dict[str, Any] = envelope["data"]
    return data


async def test_list_contacts_without_page_is_a_keyset_page(rpc: Rpc) -> None:
    """No `page`: a keyset page with default limit 100 and exactly the requested fields (§5.1)."""
    envelope = await rpc({"action": "list_contacts", "fields": ["fullName", "id"]})
    data = envelope["data"]
    assert set(data) == {
        "type",
        "results",
        "hasMore",
        "limit",
        "after",
        "before",
        "count",
        "previousPage",
        "nextPage",
    }
    assert (data["type"], data["limit"], data["hasMore"], data["count"]) == (
        "keyset",
        100,
        False,
        None,
    )
    assert len(data["results"]) == SEEDED
    assert all(list(row) == ["fullName", "id"] for row in data["results"])
    assert set(envelope) == {"success", "data"}


async def test_fields_accept_snake_case(rpc: Rpc) -> None:
    """Field names go through camel→snake, so `phone_e164` selects `phoneE164` (§8)."""
    data = (await rpc({"action": "list_contacts", "fields": ["phone_e164", "inserted_at"]}))["data"]
    assert list(data["results"][0]) == ["phoneE164", "insertedAt"]


async def test_get_contact_by_input_id(server: FakeSippet, rpc: Rpc) -> None:
    """get_contact takes its key in input.id and answers one record object."""
    contact = server.contacts[3]
    envelope = await rpc(
        {"action": "get_contact", "input": {"id": contact["id"]}, "fields": ["id", "email"]}
    )
    assert envelope == {
        "success": True,
        "data": {"id": contact["id"], "email": contact["email"]},
    }


async def test_create_contact_stores_and_returns_selected_fields(
    server: FakeSippet, rpc: Rpc
) -> None:
    """A create answers the record restricted to `fields`; strings are trimmed; tags default []."""
    data = await create(rpc, fullName="  Ada Lovelace ", company="Analytical")
    assert list(data) == CONTACT_FIELDS
    assert (data["fullName"], data["company"], data["tags"], data["email"]) == (
        "Ada Lovelace",
        "Analytical",
        [],
        None,
    )
    uuid.UUID(data["id"])
    stored = server.contacts[-1]
    assert stored["id"] == data["id"]
    assert stored["insertedAt"] == stored["updatedAt"] == data["insertedAt"]
    assert stored["insertedAt"] > server.contacts[-2]["insertedAt"]


async def test_create_without_fields_answers_empty_data_and_metadata(rpc: Rpc) -> None:
    """No `fields` (or []) means `data: {}`; exposed metadata comes back when not narrowed."""
    extras: list[dict[str, Any]] = [{}, {"fields": []}]
    for extra in extras:
        envelope = await rpc({"action": "create_contact", "input": ADA, **extra})
        assert envelope == {"success": True, "data": {}, "metadata": {"operation": "create"}}


async def test_metadata_fields_narrow_the_metadata(rpc: Rpc) -> None:
    """metadataFields (or metadata_fields) picks exposed metadata; unknown names are dropped."""
    base = {"action": "create_contact", "input": ADA}
    assert (await rpc({**base, "metadataFields": ["operation"]}))["metadata"] == {
        "operation": "create"
    }
    assert "metadata" not in await rpc({**base, "metadata_fields": ["nope"]})
    assert "metadata" not in await rpc({**base, "metadataFields": []})


async def test_update_contact_with_raw_identity(server: FakeSippet, rpc: Rpc) -> None:
    """update_contact takes the raw id as identity and moves updatedAt, not insertedAt."""
    before = server.contacts[0]
    envelope = await rpc(
        {
            "action": "update_contact",
            "identity": before["id"],
            "input": {"company": "Babbage & Co", "tags": ["vip"]},
            "fields": ["id", "company", "tags", "insertedAt", "updatedAt"],
        }
    )
    data = envelope["data"]
    assert envelope["metadata"] == {"operation": "update"}
    assert (data["company"], data["tags"], data["insertedAt"]) == (
        "Babbage & Co",
        ["vip"],
        before["insertedAt"],
    )
    assert data["updatedAt"] > before["updatedAt"]
    assert server.contacts[0]["company"] == "Babbage & Co"


async def test_destroy_contact(server: FakeSippet, rpc: Rpc) -> None:
    """destroy answers {} (or the requested fields of the deleted record); missing is {} too."""
    first, second = server.contacts[:2]
    gone = await rpc({"action": "destroy_contact", "identity": first["id"]})
    assert gone == {"success": True, "data": {}, "metadata": {"operation": "destroy"}}
    with_fields = await rpc(
        {"action": "destroy_contact", "identity": second["id"], "fields": ["fullName"]}
    )
    assert with_fields["data"] == {"fullName": second["fullName"]}
    again = await rpc({"action": "destroy_contact", "identity": first["id"]})
    assert (again["success"], again["data"]) == (True, {})
    assert len(server.contacts) == SEEDED - 2
    assert server.requests[-1].executed is True


async def test_calls_lifecycle(server: FakeSippet, rpc: Rpc) -> None:
    """create_call queues a call; get_call reads it; end_call completes it and answers {}."""
    contact_id = server.contacts[0]["id"]
    created = await rpc(
        {
            "action": "create_call",
            "input": {"contactId": contact_id, "toE164": "+15550000001"},
            "fields": ["id", "contactId", "toE164", "status", "insertedAt"],
        }
    )
    call = created["data"]
    assert (call["contactId"], call["status"]) == (contact_id, "queued")
    assert "metadata" not in created
    read = await rpc({"action": "get_call", "input": {"id": call["id"]}, "fields": ["status"]})
    assert read["data"] == {"status": "queued"}
    assert await rpc({"action": "end_call", "input": {"id": call["id"]}}) == {
        "success": True,
        "data": {},
    }
    assert server.calls == [{**call, "status": "completed"}]


async def test_list_calls_is_a_plain_array_and_ignores_page(rpc: Rpc) -> None:
    """list_calls is unpaginated: a bare array; `page` is ignored; filter and sort apply."""
    for number in ("+15550000003", "+15550000001", "+15550000002"):
        await rpc({"action": "create_call", "input": {"toE164": number}})
    data = (
        await rpc(
            {
                "action": "list_calls",
                "fields": ["toE164"],
                "sort": "-toE164",
                "filter": {"toE164": {"notEq": "+15550000002"}},
                "page": {"limit": 1},
            }
        )
    )["data"]
    assert data == [{"toE164": "+15550000003"}, {"toE164": "+15550000001"}]


async def test_validate_success_has_no_data_and_persists_nothing(
    server: FakeSippet, rpc: Rpc
) -> None:
    """/validate answers {"success": true} and never writes (§7)."""
    contact = server.contacts[0]
    payloads: list[dict[str, Any]] = [
        {"action": "create_contact", "input": ADA},
        {"action": "create_contact", "input": {**ADA, "unknownKey": 1}},  # forms ignore it
        {"action": "update_contact", "identity": contact["id"], "input": {"fullName": "Z"}},
        {"action": "destroy_contact", "identity": contact["id"]},
        {"action": "list_contacts"},  # fields are not required by /validate
        {"action": "get_contact", "input": {"id": contact["id"]}},
        {"action": "create_call", "input": {"toE164": "+15550000001"}},
        {"action": "end_call", "input": {"id": str(uuid.uuid4())}},
    ]
    for payload in payloads:
        assert await rpc(payload, endpoint="validate") == {"success": True}, payload
    assert server.contacts[0] == contact
    assert len(server.contacts) == SEEDED
    assert server.calls == []


async def test_concurrent_creates_are_all_stored(server: FakeSippet, rpc: Rpc) -> None:
    """Fifty concurrent creates store fifty distinct contacts with distinct timestamps."""
    results = await asyncio.gather(*(create(rpc, phoneE164=f"+1555010{n:04d}") for n in range(50)))
    assert len({r["id"] for r in results}) == 50
    created = server.contacts[SEEDED:]
    assert len(created) == 50
    assert len({c["insertedAt"] for c in created}) == 50
