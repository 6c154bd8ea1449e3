"""Every error the fake server emits, with the exact wire shape (docs/protocol.md §6)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from sippet_async.testing import FakeSippet

from ._support import Rpc

MISSING = str(uuid.UUID(int=1))
ADA = {"fullName": "Ada", "phoneE164": "+15550001234"}
LIST = {"action": "list_contacts", "fields": ["id"]}

# (id, payload, endpoint, expected subset of the single error object)
TYPED: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = [
    (
        "no-action",
        {"fields": ["id"]},
        "run",
        {
            "type": "missing_required_parameter",
            "message": "Required parameter %{parameter} is missing or empty",
            "shortMessage": "Missing required parameter",
            "vars": {"parameter": "action"},
        },
    ),
    ("empty-action", {"action": ""}, "validate", {"vars": {"parameter": "action"}}),
    (
        "unknown-action",
        {"action": "list_widgets", "fields": ["id"]},
        "run",
        {
            "type": "action_not_found",
            "message": "RPC action %{action_name} not found",
            "shortMessage": "Action not found",
            "vars": {"actionName": "list_widgets"},
        },
    ),
    (
        "input-not-object",
        {"action": "create_contact", "input": ["x"]},
        "run",
        {"type": "invalid_input_format", "message": "Input parameter must be a map"},
    ),
    (
        "read-without-fields",
        {"action": "list_contacts"},
        "run",
        {"type": "missing_required_parameter", "vars": {"parameter": "fields"}},
    ),
    (
        "fields-not-list",
        {"action": "get_contact", "input": {"id": MISSING}, "fields": "id"},
        "run",
        {"type": "invalid_fields_type", "message": "Fields parameter must be an array"},
    ),
    (
        "fields-empty",
        {"action": "list_contacts", "fields": []},
        "run",
        {"type": "empty_fields_array", "message": "Fields array cannot be empty"},
    ),
    (
        "fields-empty-validate",
        {"action": "list_calls", "fields": []},
        "validate",
        {"type": "empty_fields_array"},
    ),
    (
        "unknown-field",
        {"action": "list_contacts", "fields": ["id", "nick_name"]},
        "run",
        {
            "type": "unknown_field",
            "message": "Unknown field %{field} for resource %{resource}",
            "vars": {"field": "nickName", "resource": "Sippet.Contacts.Contact"},
            "fields": ["nickName"],
            "path": [],
        },
    ),
    (
        "unknown-field-on-create",
        {"action": "create_contact", "input": ADA, "fields": ["nope"]},
        "run",
        {"type": "unknown_field", "vars": {"field": "nope", "resource": "Sippet.Contacts.Contact"}},
    ),
    (
        "nested-into-attribute",
        {"action": "list_contacts", "fields": [{"fullName": ["x"]}]},
        "run",
        {"type": "invalid_field_selection", "fields": ["fullName"]},
    ),
    (
        "duplicate-field",
        {"action": "list_contacts", "fields": ["id", "id"]},
        "run",
        {"type": "duplicate_field", "vars": {"field": "id"}},
    ),
    (
        "page-not-object",
        {**LIST, "page": 20},
        "run",
        {
            "type": "invalid_pagination",
            "message": "Invalid pagination parameter format",
            "vars": {"received": "20"},
        },
    ),
    (
        "missing-identity",
        {"action": "update_contact", "input": {"fullName": "X"}},
        "run",
        {
            "type": "missing_identity",
            "shortMessage": "Missing identity",
            "vars": {"expectedKeys": "id"},
            "path": ["identity"],
        },
    ),
    (
        "map-identity",
        {"action": "destroy_contact", "identity": {"id": MISSING}},
        "run",
        {
            "type": "invalid_identity",
            "message": "Identity fields do not match any configured identity. "
            "Provided: [%{provided_keys}], expected: [%{expected_keys}]",
            "vars": {"providedKeys": "id", "expectedKeys": "id"},
            "path": ["identity"],
        },
    ),
    (
        "get-missing",
        {"action": "get_contact", "input": {"id": MISSING}, "fields": ["id"]},
        "run",
        {"type": "not_found", "message": "record not found", "shortMessage": "Not found"},
    ),
    (
        "update-missing",
        {"action": "update_contact", "identity": MISSING, "input": {}},
        "run",
        {"type": "not_found"},
    ),
    (
        "end-call-missing",
        {"action": "end_call", "input": {"id": MISSING}},
        "run",
        {"type": "not_found"},
    ),
    (
        "validate-update-missing",
        {"action": "update_contact", "identity": MISSING},
        "validate",
        {"type": "not_found"},
    ),
    (
        "validate-destroy-missing",
        {"action": "destroy_contact", "identity": MISSING},
        "validate",
        {"type": "not_found"},
    ),
    (
        "create-without-name",
        {"action": "create_contact", "input": {"phoneE164": "+15550001234"}},
        "run",
        {
            "type": "required",
            "message": "attribute full_name is required",
            "shortMessage": "Required field",
            "vars": {"field": "fullName"},
            "fields": ["fullName"],
            "path": [],
        },
    ),
    (
        "update-name-to-nil",
        {"action": "update_contact", "identity": "<first>", "input": {"fullName": None}},
        "run",
        {"type": "required", "vars": {"field": "fullName"}},
    ),
    (
        "create-bad-phone",
        {"action": "create_contact", "input": {"fullName": "A", "phoneE164": "555-0100"}},
        "run",
        {
            "type": "invalid_attribute",
            "message": "is invalid",
            "shortMessage": "Invalid attribute",
            "vars": {"field": "phoneE164"},
            "fields": ["phoneE164"],
        },
    ),
    (
        "create-call-bad-number",
        {"action": "create_call", "input": {"toE164": "15550001234"}},
        "run",
        {"type": "invalid_attribute", "vars": {"field": "toE164"}},
    ),
    (
        "validate-missing-name",
        {"action": "create_contact", "input": {"phoneE164": "+15550001234"}},
        "validate",
        {"type": "invalid_attribute", "message": "is required", "fields": ["fullName"]},
    ),
    (
        "validate-bad-phone",
        {"action": "create_contact", "input": {"fullName": "A", "phoneE164": "x"}},
        "validate",
        {"type": "invalid_attribute", "message": "is invalid", "fields": ["phoneE164"]},
    ),
    (
        "get-without-id",
        {"action": "get_call", "input": {}, "fields": ["id"]},
        "run",
        {"type": "required", "message": "argument id is required", "vars": {"field": "id"}},
    ),
    (
        "bad-cursor",
        {**LIST, "page": {"after": "bm90IGEgY3Vyc29y"}},
        "run",
        {"type": "invalid_keyset", "shortMessage": "Invalid keyset"},
    ),
    (
        "cursor-not-base64",
        {**LIST, "page": {"before": "%%%"}},
        "run",
        {"type": "invalid_keyset"},
    ),
]


@pytest.fixture
async def first_id(server: FakeSippet) -> str:
    first: str = server.contacts[0]["id"]
    return first


@pytest.mark.parametrize(
    ("payload", "endpoint", "expected"), [c[1:] for c in TYPED], ids=[c[0] for c in TYPED]
)
async def test_typed_error(
    rpc: Rpc, first_id: str, payload: dict[str, Any], endpoint: str, expected: dict[str, Any]
) -> None:
    """The request fails with exactly one error object of the expected shape, and no data."""
    if payload.get("identity") == "<first>":
        payload = {**payload, "identity": first_id}
    envelope = await rpc(payload, endpoint=endpoint)
    assert set(envelope) == {"success", "errors"}
    assert envelope["success"] is False
    (error,) = envelope["errors"]
    assert {"type", "message", "shortMessage", "vars", "fields", "path"} <= set(error)
    assert {key: error[key] for key in expected} == expected


async def test_create_reports_every_problem(rpc: Rpc) -> None:
    """Several input problems give several error objects, in attribute order."""
    envelope = await rpc({"action": "create_contact", "input": {"phoneE164": "bad", "tags": "x"}})
    assert [(e["type"], e["fields"]) for e in envelope["errors"]] == [
        ("required", ["fullName"]),
        ("invalid_attribute", ["phoneE164"]),
        ("invalid_attribute", ["tags"]),
    ]


async def test_protocol_errors_carry_details_and_placeholders_match_vars(rpc: Rpc) -> None:
    """Protocol errors carry details.hint; every %{name} has camelCase(name) in vars."""
    for payload in (
        {"action": "nope"},
        {"action": "update_contact", "identity": {"email": "a@b.c"}},
        {"action": "update_contact"},
        {"action": "list_contacts", "fields": ["id", "zzz"]},
    ):
        (error,) = (await rpc(payload))["errors"]
        assert "hint" in error["details"], error
        for name in re.findall(r"%\{(\w+)\}", error["message"]):
            camel = re.sub(r"_(\w)", lambda m: m.group(1).upper(), name)
            assert camel in error["vars"], (name, error)


async def test_invalid_identity_details_list_keys(rpc: Rpc) -> None:
    """invalid_identity lists provided and expected keys as arrays in details (§3.5)."""
    envelope = await rpc({"action": "update_contact", "identity": {"email": "a@b.c", "x": 1}})
    (error,) = envelope["errors"]
    assert error["vars"]["providedKeys"] == "email, x"
    assert (error["details"]["providedKeys"], error["details"]["expectedKeys"]) == (
        ["email", "x"],
        ["id"],
    )
    missing = (await rpc({"action": "destroy_contact"}))["errors"][0]
    assert missing["details"]["expectedKeys"] == ["id"]


UNMAPPED: list[tuple[str, dict[str, Any]]] = [
    ("unknown-filter-field", {**LIST, "filter": {"nickName": {"eq": "x"}}}),
    ("unknown-filter-operator", {**LIST, "filter": {"fullName": {"like": "x"}}}),
    ("filter-not-object", {**LIST, "filter": ["x"]}),
    ("bad-filter-value", {**LIST, "filter": {"id": {"eq": "not-a-uuid"}}}),
    ("bad-datetime-value", {**LIST, "filter": {"insertedAt": {"greaterThan": "yesterday"}}}),
    ("in-needs-array", {**LIST, "filter": {"company": {"in": "Acme"}}}),
    ("is-nil-needs-bool", {**LIST, "filter": {"email": {"isNil": "yes"}}}),
    ("bad-status-value", {"action": "list_calls", "fields": ["id"], "filter": {"status": "gone"}}),
    ("unknown-sort-field", {**LIST, "sort": "-nickName"}),
    ("sort-not-string", {**LIST, "sort": {"fullName": "asc"}}),
    ("limit-zero", {**LIST, "page": {"limit": 0}}),
    ("limit-string", {**LIST, "page": {"limit": "10"}}),
    ("limit-bool", {**LIST, "page": {"limit": True}}),
    ("offset-negative", {**LIST, "page": {"offset": -1}}),
    ("count-not-bool", {**LIST, "page": {"count": "yes"}}),
    ("cursor-not-string", {**LIST, "page": {"after": 5}}),
    ("unknown-page-key", {**LIST, "page": {"size": 5}}),
    ("unknown-create-input", {"action": "create_contact", "input": {**ADA, "nick": "x"}}),
    (
        "read-only-input",
        {"action": "create_call", "input": {"toE164": "+15551", "status": "failed"}},
    ),
    ("list-with-input", {**LIST, "input": {"q": "x"}}),
    (
        "get-extra-input",
        {"action": "get_contact", "input": {"id": MISSING, "x": 1}, "fields": ["id"]},
    ),
]


@pytest.mark.parametrize("payload", [c[1] for c in UNMAPPED], ids=[c[0] for c in UNMAPPED])
async def test_unmapped_ash_error_is_code_only_internal_error(
    server: FakeSippet, rpc: Rpc, payload: dict[str, Any]
) -> None:
    """Bad filters, sorts, page values and input keys give the §6.3 `code` object, no `type`."""
    envelope = await rpc(payload)
    assert envelope["success"] is False
    (error,) = envelope["errors"]
    assert "type" not in error
    assert (error["code"], error["shortMessage"]) == ("internal_error", "Internal error")
    uuid.UUID(error["errorId"])
    assert error["message"] == f"Something went wrong. Unique error id: {error['errorId']}"
    assert (error["vars"], error["fields"], error["path"]) == ({}, [], [])
    assert server.requests[-1].executed is False
