"""The RPC actions of the fake server and the request pipeline (docs/protocol.md §3, §4, §7, §12.6).

:func:`handle` turns one decoded request body into one envelope. It is synchronous: the
whole action runs between two awaits, so concurrent requests never see half a write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import msgspec

from . import _error_objects as E
from ._pages import keyset_page, offset_page, parse_page
from ._rules import Record, compile_filter, parse_sort, project, select_fields
from ._schema import CALL, CONTACT, Invalid, Resource, canonical_uuid, cast_input, snake
from ._store import Store

Endpoint = Literal["run", "validate"]
Metadata = dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The envelope to answer with; ``executed`` is true when the action succeeded."""

    body: dict[str, Any]
    executed: bool


@dataclass(frozen=True, slots=True)
class Call:
    """One parsed request: top-level keys snake_cased except ``input``/``identity`` (§3.1)."""

    action: str
    params: dict[str, Any]
    input: dict[str, Any]
    max_page_size: int

    def fields(self, resource: Resource, *, required: bool, allow_empty: bool) -> tuple[str, ...]:
        """The selected wire names (empty when ``fields`` was absent and optional)."""
        names = select_fields(
            resource, self.params.get("fields"), required=required, allow_empty=allow_empty
        )
        return names or ()


@dataclass(frozen=True, slots=True)
class Action:
    """How one action runs (``/run``) and validates (``/validate``)."""

    run: Callable[[Store, Call], tuple[Any, Metadata]]
    validate: Callable[[Store, Call], None]


def handle(
    store: Store, endpoint: Endpoint, params: dict[str, Any] | None, *, max_page_size: int
) -> Outcome:
    """Answer one request body (``None`` when it was not a JSON object, §2)."""
    try:
        call = _parse(params, max_page_size)
        action = ACTIONS[call.action]
        if endpoint == "validate":
            action.validate(store, call)
            return Outcome({"success": True}, True)
        data, metadata = action.run(store, call)
    except E.RpcFailure as failure:
        return Outcome({"success": False, "errors": failure.errors}, False)
    body: dict[str, Any] = {"success": True, "data": data}
    shown = _metadata(metadata, call.params.get("metadata_fields"))
    if shown:
        body["metadata"] = shown
    return Outcome(body, True)


def _parse(params: dict[str, Any] | None, max_page_size: int) -> Call:
    raw = params or {}
    normalized = {k if k in ("input", "identity") else snake(k): v for k, v in raw.items()}
    action = normalized.get("action")
    if action is None or action == "":
        raise E.RpcFailure(E.missing_required_parameter("action"))
    if not isinstance(action, str) or action not in ACTIONS:
        name = action if isinstance(action, str) else E.inspect(action)
        raise E.RpcFailure(E.action_not_found(name))
    data = normalized.get("input")
    if data is None:
        data = {}
    elif not isinstance(data, dict):
        raise E.RpcFailure(E.invalid_input_format(data))
    return Call(action, normalized, data, max_page_size)


def _metadata(exposed: Metadata, requested: object) -> Metadata:
    """§3.6: all exposed metadata unless ``metadataFields`` names some; others are dropped."""
    if exposed is None or not isinstance(requested, list):
        return exposed
    wanted = {snake(name) for name in requested if isinstance(name, str)}
    return {k: v for k, v in exposed.items() if snake(k) in wanted}


# --- shared steps ---


def _cast(resource: Resource, data: dict[str, Any], mode: Literal["create", "update"]) -> Record:
    """Cast ``input`` for ``/run``: unknown keys are unmapped, problems are Ash errors."""
    try:
        changes, problems = cast_input(resource, data, mode)
    except KeyError:
        raise E.unmapped() from None
    if problems:
        raise E.RpcFailure(
            *(
                E.required(a.name, a.snake) if kind == "required" else E.invalid_attribute(a.name)
                for kind, a in problems
            )
        )
    return changes


def _form(resource: Resource, data: dict[str, Any], mode: Literal["create", "update"]) -> None:
    """Validate ``input`` as an AshPhoenix form does (§7): unknown keys are ignored."""
    _changes, problems = cast_input(resource, data, mode, strict=False)
    if problems:
        raise E.RpcFailure(
            *(
                E.invalid_attribute(a.name, "is required" if kind == "required" else "is invalid")
                for kind, a in problems
            )
        )


def _id_argument(data: dict[str, Any], *, form: bool) -> str:
    """The ``input.id`` argument of get-style reads and ``end_call``."""
    if not form and data.keys() - {"id"}:
        raise E.unmapped()  # Ash NoSuchInput
    value = data.get("id")
    if value is None or value == "":
        if form:
            raise E.RpcFailure(E.invalid_attribute("id", "is required"))
        raise E.RpcFailure(E.required("id", "id", kind="argument"))
    try:
        if not isinstance(value, str):
            raise Invalid(value)
        return canonical_uuid(value)
    except Invalid:
        raise E.RpcFailure(
            E.invalid_attribute("id") if form else E.invalid_argument("id")
        ) from None


def _identity(params: dict[str, Any]) -> str | None:
    """The raw primary-key identity of update/destroy (§3.5); None if it matches no uuid."""
    identity = params.get("identity")
    if identity is None or identity == "":
        raise E.RpcFailure(E.missing_identity())
    if isinstance(identity, dict):
        raise E.RpcFailure(E.invalid_identity([str(key) for key in identity]))
    if not isinstance(identity, str):
        raise E.RpcFailure(E.invalid_identity([]))
    try:
        return canonical_uuid(identity)
    except Invalid:
        return None


def _load(store: Store, resource: Resource, params: dict[str, Any]) -> Record:
    record_id = _identity(params)
    record = store.get(resource, record_id) if record_id else None
    if record is None:
        raise E.RpcFailure(E.not_found())
    return record


# --- action kinds ---


def _list(resource: Resource, *, paginated: bool) -> Action:
    def page_object(call: Call) -> dict[str, Any] | None:
        page = call.params.get("page")
        if page is not None and not isinstance(page, dict):
            raise E.RpcFailure(E.invalid_pagination(page))
        return page

    def run(store: Store, call: Call) -> tuple[Any, Metadata]:
        names = call.fields(resource, required=True, allow_empty=False)
        page = page_object(call)
        if call.input:
            raise E.unmapped()  # list actions take no arguments
        keys = parse_sort(resource, call.params.get("sort"))
        filter_ = call.params.get("filter")
        predicate = compile_filter(resource, filter_)
        # §12.6 decision: list_calls has no pagination; a `page` object there is ignored.
        request = parse_page(page, call.max_page_size) if paginated else None
        rows = store.rows(resource, keys, predicate, msgspec.json.encode(filter_))

        def render(record: Record) -> Record:
            return project(record, names)

        if request is None:
            return [render(row) for row in rows], None
        if request.offset is not None:
            return offset_page(rows, request, render), None
        return keyset_page(rows, keys, request, render, resource), None

    def validate(_store: Store, call: Call) -> None:
        call.fields(resource, required=False, allow_empty=False)
        page_object(call)

    return Action(run, validate)


def _get(resource: Resource) -> Action:
    def run(store: Store, call: Call) -> tuple[Any, Metadata]:
        names = call.fields(resource, required=True, allow_empty=False)
        record = store.get(resource, _id_argument(call.input, form=False))
        if record is None:
            raise E.RpcFailure(E.not_found())
        return project(record, names), None

    def validate(_store: Store, call: Call) -> None:
        call.fields(resource, required=False, allow_empty=False)
        _id_argument(call.input, form=True)

    return Action(run, validate)


def _create(resource: Resource, build: Callable[[Store, Record], Record]) -> Action:
    def run(store: Store, call: Call) -> tuple[Any, Metadata]:
        names = call.fields(resource, required=False, allow_empty=True)
        record = build(store, _cast(resource, call.input, "create"))
        store.insert(resource, record)
        return project(record, names), _exposed(resource, "create")

    def validate(_store: Store, call: Call) -> None:
        call.fields(resource, required=False, allow_empty=True)
        _form(resource, call.input, "create")

    return Action(run, validate)


def _update(resource: Resource) -> Action:
    def run(store: Store, call: Call) -> tuple[Any, Metadata]:
        names = call.fields(resource, required=False, allow_empty=True)
        record = _load(store, resource, call.params)
        changes = _cast(resource, call.input, "update")
        record = store.update(resource, record["id"], {**changes, "updatedAt": store.now()})
        return project(record, names), _exposed(resource, "update")

    def validate(store: Store, call: Call) -> None:
        call.fields(resource, required=False, allow_empty=True)
        _load(store, resource, call.params)
        _form(resource, call.input, "update")

    return Action(run, validate)


def _destroy(resource: Resource) -> Action:
    def run(store: Store, call: Call) -> tuple[Any, Metadata]:
        names = call.fields(resource, required=False, allow_empty=True)
        record_id = _identity(call.params)
        record = store.delete(resource, record_id) if record_id else None
        if record is None:
            return {}, None  # §3.5: destroying a missing record succeeds with {}
        return project(record, names), _exposed(resource, "destroy")

    def validate(store: Store, call: Call) -> None:
        call.fields(resource, required=False, allow_empty=True)
        _load(store, resource, call.params)

    return Action(run, validate)


def _exposed(resource: Resource, operation: str) -> Metadata:
    # Contact mutations expose one metadata field, so clients can test §3.6 placement.
    return {"operation": operation} if resource is CONTACT else None


def _end_call() -> Action:
    """A generic action returning nothing (``{}``); ``fields`` is ignored."""

    def run(store: Store, call: Call) -> tuple[Any, Metadata]:
        record_id = _id_argument(call.input, form=False)
        if store.get(CALL, record_id) is None:
            raise E.RpcFailure(E.not_found())
        store.update(CALL, record_id, {"status": "completed"})
        return {}, None

    def validate(_store: Store, call: Call) -> None:
        _id_argument(call.input, form=True)

    return Action(run, validate)


def _new_contact(store: Store, changes: Record) -> Record:
    stamp = store.now()
    return {
        "id": store.new_id(),
        "fullName": changes["fullName"],
        "phoneE164": changes["phoneE164"],
        "email": changes.get("email"),
        "company": changes.get("company"),
        "tags": changes.get("tags", []),
        "insertedAt": stamp,
        "updatedAt": stamp,
    }


def _new_call(store: Store, changes: Record) -> Record:
    return {
        "id": store.new_id(),
        "contactId": changes.get("contactId"),
        "toE164": changes["toE164"],
        "status": "queued",
        "insertedAt": store.now(),
    }


ACTIONS: Final[dict[str, Action]] = {
    "list_contacts": _list(CONTACT, paginated=True),
    "get_contact": _get(CONTACT),
    "create_contact": _create(CONTACT, _new_contact),
    "update_contact": _update(CONTACT),
    "destroy_contact": _destroy(CONTACT),
    "list_calls": _list(CALL, paginated=False),
    "get_call": _get(CALL),
    "create_call": _create(CALL, _new_call),
    "end_call": _end_call(),
}
