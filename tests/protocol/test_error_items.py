"""ErrorItem rendering and kind, and which exception each §6.4 error type selects."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from sippet_async._errors import (
    ActionNotFoundError,
    AuthenticationError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    RpcError,
    SippetError,
    rpc_error_for,
)
from sippet_async._models import ErrorItem


@pytest.mark.parametrize(
    ("message", "vars", "expected"),
    [
        # §6.2 quirk: snake placeholder, camelCase vars key.
        (
            "RPC action %{action_name} not found",
            {"actionName": "list_x"},
            "RPC action list_x not found",
        ),
        # The placeholder spelled as the vars key works too.
        (
            "RPC action %{actionName} not found",
            {"actionName": "list_x"},
            "RPC action list_x not found",
        ),
        (
            "Required parameter %{parameter} is missing or empty",
            {"parameter": "fields"},
            "Required parameter fields is missing or empty",
        ),
        # Several snake segments, and one digit segment (phone_e164 -> phoneE164, §8).
        (
            "%{provided_keys} vs %{expected_keys}",
            {"providedKeys": "a", "expectedKeys": "b"},
            "a vs b",
        ),
        ("bad %{phone_e164}", {"phoneE164": "+1"}, "bad +1"),
        # Lists are joined; numbers and booleans are str()'d.
        (
            "expected one of %{expected_members}",
            {"expectedMembers": ["note", "url"]},
            "expected one of note, url",
        ),
        ("max %{max}", {"max": 500}, "max 500"),
        ("ratio %{ratio}", {"ratio": 2.5}, "ratio 2.5"),
        ("flag %{flag}", {"flag": True}, "flag True"),
        ("empty %{keys}", {"keys": []}, "empty "),
        # A placeholder with no var stays exactly as written; text around is untouched.
        ("missing %{nope} here", {}, "missing %{nope} here"),
        ("missing %{some_var}", {"other": 1}, "missing %{some_var}"),
        ("half %{ok} and %{gone}", {"ok": "yes"}, "half yes and %{gone}"),
        # Not placeholders at all: left alone.
        ("100% {literal} %{} %{with space}", {"literal": "x"}, "100% {literal} %{} %{with space}"),
        ("no placeholders", {"unused": 1}, "no placeholders"),
        # The same placeholder twice, and the exact key winning over the camel one.
        ("%{field}/%{field}", {"field": "id"}, "id/id"),
        ("%{a_b}", {"a_b": "snake", "aB": "camel"}, "snake"),
    ],
)
def test_render_interpolates_placeholders(
    message: str, vars: dict[str, Any], expected: str
) -> None:
    """render() fills %{name} from vars, trying the name then its camelCase (§6.2)."""
    assert ErrorItem(message=message, vars=vars).render() == expected


def test_render_without_message_falls_back_to_short_message_then_kind() -> None:
    """An item may lack message; render() then says shortMessage, then the kind (§12.3)."""
    assert ErrorItem(short_message="Forbidden", type="forbidden").render() == "Forbidden"
    assert ErrorItem(type="forbidden").render() == "forbidden"
    assert ErrorItem(code="internal_error").render() == "internal_error"
    assert ErrorItem().render() == "unknown_error"


@pytest.mark.parametrize(
    ("item", "kind"),
    [
        (ErrorItem(type="not_found"), "not_found"),
        (ErrorItem(type="not_found", code="internal_error"), "not_found"),
        (ErrorItem(code="internal_error"), "internal_error"),
        (ErrorItem(type="", code="error"), "error"),
        (ErrorItem(message="only a message"), "unknown_error"),
    ],
)
def test_kind_is_type_then_code_then_unknown(item: ErrorItem, kind: str) -> None:
    """.kind reads type, falls back to code (§6.3), then 'unknown_error'."""
    assert item.kind == kind


# docs/protocol.md §6.4, every type listed there, with the class the caller should catch.
_BY_TYPE: list[tuple[str, type[SippetError]]] = [
    *[
        (t, InvalidInputError)
        for t in (
            "missing_required_parameter",
            "invalid_input_format",
            "invalid_fields_type",
            "empty_fields_array",
            "invalid_pagination",
            "unknown_field",
            "unknown_map_field",
            "unknown_union_field",
            "invalid_field_format",
            "invalid_calculation_args",
            "requires_field_selection",
            "invalid_field_selection",
            "field_does_not_support_nesting",
            "duplicate_field",
            "unsupported_field_combination",
            "invalid_union_input",
            "missing_identity",
            "invalid_identity",
            "missing_required_input",
            "unexpected_get_by_fields",
            "field_validation_error",
            "tenant_required",
            "invalid_changes",
            "invalid_query",
            "required",
            "invalid_attribute",
            "invalid_argument",
            "invalid_keyset",
            "invalid_page",
            "invalid_primary_key",
        )
    ],
    ("action_not_found", ActionNotFoundError),
    ("not_found", NotFoundError),
    ("forbidden", ForbiddenError),
    ("forbidden_field", ForbiddenError),
    ("load_not_allowed", ForbiddenError),
    ("load_denied", ForbiddenError),
    ("authentication_failed", AuthenticationError),
    ("invalid_token", AuthenticationError),
    # No specific class: the caller catches RpcError.
    ("unknown_error", RpcError),
    ("internal_error", RpcError),
    ("something_sippet_added", RpcError),
]


@pytest.mark.parametrize(("kind", "cls"), _BY_TYPE)
def test_rpc_error_for_picks_class_by_type(kind: str, cls: type[SippetError]) -> None:
    """Each §6.4 type selects its exception class, exactly (not a sibling or the base)."""
    error = rpc_error_for("list_contacts", [ErrorItem(type=kind, message="m")])
    assert type(error) is cls
    assert error.errors[0].type == kind  # type: ignore[attr-defined]


@pytest.mark.parametrize(("kind", "cls"), _BY_TYPE)
def test_rpc_error_for_falls_back_to_code(kind: str, cls: type[SippetError]) -> None:
    """An item with code but no type is classified by its code (§6.3, §12.3)."""
    assert type(rpc_error_for("get_contact", [ErrorItem(code=kind)])) is cls


def test_rpc_error_for_prefers_a_typed_item_over_an_earlier_code() -> None:
    """The first *typed* item decides; codes only count when no item has a type."""
    errors = [ErrorItem(code="internal_error"), ErrorItem(type="not_found")]
    assert type(rpc_error_for("get_contact", errors)) is NotFoundError


def test_rpc_error_hierarchy_lets_callers_catch_rpc_error() -> None:
    """Every RPC subclass is an RpcError; authentication is not (it is not the input's fault)."""
    for cls in (NotFoundError, ForbiddenError, ActionNotFoundError, InvalidInputError):
        assert issubclass(cls, RpcError)
    assert not issubclass(AuthenticationError, RpcError)
    assert issubclass(AuthenticationError, SippetError)


@pytest.mark.parametrize(
    ("errors", "text"),
    [
        (
            [
                ErrorItem(
                    type="required",
                    message="attribute %{field} is required",
                    vars={"field": "fullName"},
                    fields=("fullName",),
                )
            ],
            "create_contact: required: attribute fullName is required (fullName)",
        ),
        (
            [ErrorItem(code="internal_error", message="boom")],
            "create_contact: internal_error: boom",
        ),
        ([ErrorItem(message="boom")], "create_contact: error: boom"),
        (
            [
                ErrorItem(type="required", message="a", fields=("x", "y")),
                ErrorItem(type="required", message="b"),
                ErrorItem(type="required", message="c"),
            ],
            "create_contact: required: a (x, y) (+2 more)",
        ),
        ([], "create_contact: the server reported failure without details"),
    ],
)
def test_str_names_action_and_first_error(errors: list[ErrorItem], text: str) -> None:
    """str(RpcError) names the action, the first item's kind, its message and fields."""
    error = RpcError("create_contact", errors)
    assert str(error) == text
    assert error.action == "create_contact"
    assert error.errors == tuple(errors)
    assert error.first == (errors[0] if errors else None)


@pytest.mark.parametrize("key", ["vars", "fields", "path", "details"])
def test_null_collections_in_an_error_item_read_as_empty(key: str) -> None:
    """``null`` for vars, fields, path or details is tolerated and reads as empty (§12.3)."""
    body = msgspec.json.encode({"type": "required", "message": "m", key: None})
    item = msgspec.json.decode(body, type=ErrorItem)
    assert item.vars == {}
    assert item.fields == ()
    assert item.path == ()
    assert item.details is None
    assert item.render() == "m"


def test_an_error_item_built_with_none_holds_empty_collections() -> None:
    """Built in code, ``None`` is normalised the same way as on the wire."""
    item = ErrorItem(vars=None, fields=None, path=None)  # type: ignore[arg-type]
    assert (item.vars, item.fields, item.path) == ({}, (), ())
