"""Wire error objects of the fake server, exactly as docs/protocol.md §6.2 and §6.3 shape them.

Every builder returns a plain dict with camelCase keys. Messages keep their snake_case
``%{placeholders}`` uninterpolated; ``vars`` carries the values under camelCase keys.
Handlers raise :class:`RpcFailure` to stop and answer ``{"success": false, "errors": [...]}``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Final

import msgspec

ErrorObject = dict[str, Any]

# ash_typescript attaches this hint to every protocol error (§6.2 `details.hint`).
STALE_CLIENT_HINT: Final = (
    "This error is most likely happening because the generated client file is not up to "
    "date with the running backend. Check that you are using the latest generated file, "
    "and/or that a new file has been generated after the last backend changes."
)


class RpcFailure(Exception):
    """Stops request handling; carries the error objects to answer with."""

    def __init__(self, *errors: ErrorObject) -> None:
        super().__init__(errors[0].get("type") or errors[0].get("code"))
        self.errors = list(errors)


def inspect(value: object) -> str:
    """Render a received value for ``vars.received`` (JSON, as the client sent it)."""
    return msgspec.json.encode(value).decode()


def error(
    type_: str,
    message: str,
    short_message: str,
    *,
    vars_: dict[str, Any] | None = None,
    fields: Sequence[str] = (),
    path: Sequence[str] = (),
    details: dict[str, Any] | None = None,
) -> ErrorObject:
    """Build one typed error object (§6.2)."""
    obj: ErrorObject = {
        "type": type_,
        "message": message,
        "shortMessage": short_message,
        "vars": vars_ or {},
        "fields": list(fields),
        "path": list(path),
    }
    if details is not None:
        obj["details"] = details
    return obj


def _protocol(
    type_: str,
    message: str,
    short_message: str,
    *,
    vars_: dict[str, Any] | None = None,
    fields: Sequence[str] = (),
    path: Sequence[str] = (),
    **details: Any,
) -> ErrorObject:
    """Protocol (request-shape) errors always carry ``details`` with the stale-client hint."""
    return error(
        type_,
        message,
        short_message,
        vars_=vars_,
        fields=fields,
        path=path,
        details={**details, "hint": STALE_CLIENT_HINT},
    )


def action_not_found(action: str) -> ErrorObject:
    return _protocol(
        "action_not_found",
        "RPC action %{action_name} not found",
        "Action not found",
        vars_={"actionName": action},
        suggestion="Check that the action is properly configured in your domain's rpc block",
    )


def missing_required_parameter(parameter: str) -> ErrorObject:
    return _protocol(
        "missing_required_parameter",
        "Required parameter %{parameter} is missing or empty",
        "Missing required parameter",
        vars_={"parameter": parameter},
        suggestion="Ensure %{parameter} parameter is provided and not empty",
    )


def invalid_input_format(received: object) -> ErrorObject:
    return _protocol(
        "invalid_input_format",
        "Input parameter must be a map",
        "Invalid input format",
        vars_={"received": inspect(received)},
        expected="Map containing input parameters",
    )


def invalid_fields_type(received: object) -> ErrorObject:
    return _protocol(
        "invalid_fields_type",
        "Fields parameter must be an array",
        "Invalid fields type",
        vars_={"received": inspect(received)},
        expectedCode="array",
        suggestion='Wrap field names in an array, e.g., ["field1", "field2"]',
    )


def empty_fields_array() -> ErrorObject:
    return _protocol(
        "empty_fields_array",
        "Fields array cannot be empty",
        "Empty fields array",
        suggestion="Provide at least one field name in the fields array",
    )


def invalid_field_format(received: object) -> ErrorObject:
    return _protocol(
        "invalid_field_format",
        "Invalid field specification format",
        "Invalid field format",
        vars_={"received": inspect(received)},
        expected="String field name or map with single key-value pair",
    )


def unknown_field(field: str, resource: str) -> ErrorObject:
    return _protocol(
        "unknown_field",
        "Unknown field %{field} for resource %{resource}",
        "Unknown field",
        vars_={"field": field, "resource": resource},
        fields=[field],
        suggestion=(
            "Check the field name spelling and ensure it's a public attribute, "
            "calculation, or relationship"
        ),
    )


def invalid_field_selection(field: str) -> ErrorObject:
    return _protocol(
        "invalid_field_selection",
        "Cannot select fields from %{field_type} %{field}",
        "Invalid field selection",
        vars_={"fieldType": "attribute", "field": field},
        fields=[field],
        path=[field],
        suggestion="Remove the field selection for this attribute field",
    )


def duplicate_field(field: str) -> ErrorObject:
    return _protocol(
        "duplicate_field",
        "Field %{field} was requested multiple times",
        "Duplicate field",
        vars_={"field": field},
        fields=[field],
        suggestion="Remove duplicate field specifications",
    )


def invalid_pagination(received: object) -> ErrorObject:
    return _protocol(
        "invalid_pagination",
        "Invalid pagination parameter format",
        "Invalid pagination",
        vars_={"received": inspect(received)},
        expected="Map with pagination parameters (limit, offset, before, after, etc.)",
    )


def missing_identity(expected_keys: Sequence[str] = ("id",)) -> ErrorObject:
    key = expected_keys[0]
    return _protocol(
        "missing_identity",
        f"Identity is required. Provide the {key} value directly.",
        "Missing identity",
        vars_={"expectedKeys": ", ".join(expected_keys)},
        path=["identity"],
        expectedKeys=list(expected_keys),
        suggestion=(
            f"Pass the {key} value directly as the identity field "
            f'(e.g., identity: "your-{key}-here")'
        ),
    )


def invalid_identity(
    provided_keys: Sequence[str], expected_keys: Sequence[str] = ("id",)
) -> ErrorObject:
    expected = ", ".join(expected_keys)
    return _protocol(
        "invalid_identity",
        "Identity fields do not match any configured identity. "
        "Provided: [%{provided_keys}], expected: [%{expected_keys}]",
        "Invalid identity",
        vars_={"providedKeys": ", ".join(provided_keys), "expectedKeys": expected},
        path=["identity"],
        providedKeys=list(provided_keys),
        expectedKeys=list(expected_keys),
        suggestion=f"Provide all required fields for one of the configured identities: {expected}",
    )


# --- Ash-derived errors (no `details`, §6.2 examples) ---


def not_found() -> ErrorObject:
    return error("not_found", "record not found", "Not found")


def required(field: str, snake_name: str, kind: str = "attribute") -> ErrorObject:
    """Ash ``Required``: the message names the snake_case field; ``vars`` the wire one."""
    return error(
        "required",
        f"{kind} {snake_name} is required",
        "Required field",
        vars_={"field": field},
        fields=[field],
    )


def invalid_attribute(field: str, message: str = "is invalid") -> ErrorObject:
    return error(
        "invalid_attribute", message, "Invalid attribute", vars_={"field": field}, fields=[field]
    )


def invalid_argument(field: str, message: str = "is invalid") -> ErrorObject:
    return error(
        "invalid_argument", message, "Invalid argument", vars_={"field": field}, fields=[field]
    )


def invalid_keyset(value: object) -> ErrorObject:
    return error(
        "invalid_keyset",
        "Invalid value provided as a keyset: %{value}",
        "Invalid keyset",
        vars_={"value": inspect(value)},
    )


def internal_error() -> ErrorObject:
    """The ``code``-only object of §6.3, for Ash errors ash_typescript does not map."""
    error_id = str(uuid.uuid4())
    return {
        "message": f"Something went wrong. Unique error id: {error_id}",
        "shortMessage": "Internal error",
        "code": "internal_error",
        "vars": {},
        "fields": [],
        "path": [],
        "errorId": error_id,
    }


def unmapped() -> RpcFailure:
    """A failure answered with :func:`internal_error` (bad filter, sort, page value, input key)."""
    return RpcFailure(internal_error())


def authentication_failed(message: str) -> ErrorObject:
    """Body of the HTTP 401 the fake server puts in front of the RPC controller (§12.1)."""
    return error("authentication_failed", message, "Authentication failed")
