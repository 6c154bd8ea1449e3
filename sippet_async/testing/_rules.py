"""Field selection, filter and sort rules (docs/protocol.md §3.2 to §3.4), as pure functions
over dicts.

Errors the protocol maps (``unknown_field`` …) raise :class:`RpcFailure` with that object;
filter and sort problems are unmapped Ash errors and raise the ``internal_error`` form (§3.3).
Filters use SQL's three-valued logic: a nil attribute never matches a comparison, and
``not`` of an unknown stays unknown, as on Postgres.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from . import _error_objects as E
from ._schema import Attribute, Invalid, Resource, camel, cast, snake

Record = dict[str, Any]
Truth = bool | None  # None: SQL unknown
Predicate = Callable[[Record], Truth]

# --- fields (§3.2) ---


def select_fields(
    resource: Resource, fields: object, *, required: bool, allow_empty: bool
) -> tuple[str, ...] | None:
    """Validate ``fields``; return the wire names in request order (None: absent, optional).

    Reads need a non-empty list (``required``); ``/validate`` checks one only if given, and
    mutations accept ``[]`` (``allow_empty``), answering ``data: {}``.
    """
    if fields is None:
        if required:
            raise E.RpcFailure(E.missing_required_parameter("fields"))
        return None
    if not isinstance(fields, list):
        raise E.RpcFailure(E.invalid_fields_type(fields))
    if not fields and not allow_empty:
        raise E.RpcFailure(E.empty_fields_array())
    names: list[str] = []
    for item in fields:
        if isinstance(item, dict) and item:
            # Nested selections: our resources have only primitive attributes.
            key = next(iter(item))
            known = resource.attribute(key)
            if known is None:
                raise E.RpcFailure(E.unknown_field(camel(key), resource.module))
            raise E.RpcFailure(E.invalid_field_selection(known.name))
        if not isinstance(item, str):
            raise E.RpcFailure(E.invalid_field_format(item))
        attribute = resource.attribute(item)
        if attribute is None:
            raise E.RpcFailure(E.unknown_field(camel(item), resource.module))
        if attribute.name in names:
            raise E.RpcFailure(E.duplicate_field(attribute.name))
        names.append(attribute.name)
    return tuple(names)


def project(record: Record, names: Iterable[str] | None) -> Record:
    """The record restricted to ``names`` (a copy; ``{}`` when no fields were asked for)."""
    return {name: _copy(record[name]) for name in names or ()}


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


# --- filter (§3.3) ---

_ALIASES: Final = {
    "equals": "eq",
    "not_equals": "not_eq",
    "gt": "greater_than",
    "gte": "greater_than_or_equal",
    "lt": "less_than",
    "lte": "less_than_or_equal",
}
_COMPARE: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "eq": lambda a, b: bool(a == b),
    "not_eq": lambda a, b: bool(a != b),
    "greater_than": lambda a, b: bool(a > b),
    "greater_than_or_equal": lambda a, b: bool(a >= b),
    "less_than": lambda a, b: bool(a < b),
    "less_than_or_equal": lambda a, b: bool(a <= b),
}


def compile_filter(resource: Resource, filter_: object) -> Predicate:
    """Compile a client filter into a predicate; ``None`` matches everything."""
    if filter_ is None:
        return lambda _record: True
    return _node(resource, filter_)


def matches(predicate: Predicate, record: Record) -> bool:
    """Only a definite true keeps a row (SQL WHERE)."""
    return predicate(record) is True


def _node(resource: Resource, node: object) -> Predicate:
    if not isinstance(node, dict):
        raise E.unmapped()
    parts: list[Predicate] = []
    for key, value in node.items():
        name = snake(key)
        if name in ("and", "or", "not"):
            children = [_node(resource, child) for child in _listed(value)]
            if name == "or":
                parts.append(_any(children))
            elif name == "not":
                parts.append(_negate(_all(children)))
            else:
                parts.append(_all(children))
            continue
        attribute = resource.attribute(key)
        if attribute is None:
            raise E.unmapped()  # Ash NoSuchField
        operators = value if isinstance(value, dict) else {"eq": value}  # `field: value` is eq
        parts.extend(_operator(attribute, snake(op), operand) for op, operand in operators.items())
    return _all(parts)


def _listed(value: object) -> list[object]:
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return value
    raise E.unmapped()


def _all(parts: Sequence[Predicate]) -> Predicate:
    def check(record: Record) -> Truth:
        results = [part(record) for part in parts]
        if False in results:
            return False
        return None if None in results else True

    return check


def _any(parts: Sequence[Predicate]) -> Predicate:
    def check(record: Record) -> Truth:
        results = [part(record) for part in parts]
        if True in results:
            return True
        return None if None in results else False

    return check


def _negate(part: Predicate) -> Predicate:
    def check(record: Record) -> Truth:
        result = part(record)
        return None if result is None else not result

    return check


def _operator(attribute: Attribute, op: str, operand: object) -> Predicate:
    op = _ALIASES.get(op, op)
    name = attribute.name
    if op == "is_nil":
        if not isinstance(operand, bool):
            raise E.unmapped()
        return lambda record: (record[name] is None) is operand
    if op == "has" and attribute.type == "tags":
        element = _cast_operand(attribute, [operand])[0]
        return lambda record: None if record[name] is None else element in record[name]
    if op == "in":
        if not isinstance(operand, list):
            raise E.unmapped()
        options = [_cast_operand(attribute, item) for item in operand]
        return lambda record: None if record[name] is None else record[name] in options
    compare = _COMPARE.get(op)
    if compare is None:
        raise E.unmapped()  # unknown operator
    value = _cast_operand(attribute, operand)
    if value is None:
        return lambda _record: None  # comparing with NULL is unknown
    return lambda record: None if record[name] is None else compare(record[name], value)


def _cast_operand(attribute: Attribute, operand: object) -> Any:
    try:
        if attribute.type in ("string", "e164"):
            return _plain(operand)
        return cast(attribute, operand)
    except Invalid:
        raise E.unmapped() from None  # Ash InvalidFilterValue


def _plain(operand: object) -> str | None:
    # Filter values are compared verbatim: no trimming and no constraints, unlike inputs.
    if operand is None or isinstance(operand, str):
        return operand
    raise Invalid(operand)


# --- sort (§3.4) ---


@dataclass(frozen=True, slots=True)
class SortKey:
    """One sort item: wire field name, direction, and where nils go."""

    field: str
    descending: bool = False
    nils_first: bool = False


_PREFIXES: Final = (  # longest first
    ("++", False, True),
    ("--", True, False),
    ("+", False, False),
    ("-", True, True),
)
ID_TIEBREAK: Final = SortKey("id")
DEFAULT_SORT: Final = (SortKey("insertedAt"),)


def parse_sort(resource: Resource, sort: object) -> tuple[SortKey, ...]:
    """Parse ``sort``; default ``insertedAt`` ascending; ``id`` is always the final tiebreak."""
    if sort is None:
        items: list[str] = []
    elif isinstance(sort, str):
        items = sort.split(",")
    elif isinstance(sort, list) and all(isinstance(item, str) for item in sort):
        items = ",".join(sort).split(",")
    else:
        raise E.unmapped()
    keys: list[SortKey] = []
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        descending, nils_first = False, False
        for prefix, desc, nils in _PREFIXES:
            if item.startswith(prefix):
                item, descending, nils_first = item[len(prefix) :], desc, nils
                break
        attribute = resource.attribute(item)
        if attribute is None:
            raise E.unmapped()
        keys.append(SortKey(attribute.name, descending, nils_first))
    return (*(keys or DEFAULT_SORT), ID_TIEBREAK)


def sort_values(record: Record, keys: Sequence[SortKey]) -> list[Any]:
    """The values a keyset cursor encodes: one per sort key, ``id`` last."""
    return [record[key.field] for key in keys]


def compare_values(left: Sequence[Any], right: Sequence[Any], keys: Sequence[SortKey]) -> int:
    """Three-way compare two sort-value lists under ``keys`` (-1, 0, 1)."""
    for a, b, key in zip(left, right, keys, strict=True):
        if a == b:
            continue
        if a is None or b is None:
            first = a is None
            return -1 if first == key.nils_first else 1
        less = a < b
        return -1 if less != key.descending else 1
    return 0


def sort_records(records: Iterable[Record], keys: Sequence[SortKey]) -> list[Record]:
    """Records in ``keys`` order, the order :func:`compare_values` defines.

    One stable sort per key, least significant first (``reverse`` keeps stability), is
    much faster than a comparison function on large tables.
    """
    rows = list(records)
    for key in reversed(keys):
        # Nils rank below or above every value so that, after any reversal, they land
        # first or last as the prefix asks.
        nil_rank = 0 if key.nils_first != key.descending else 2

        def rank(record: Record, field: str = key.field, nil: int = nil_rank) -> tuple[int, Any]:
            value = record[field]
            return (nil, "") if value is None else (1, value)

        rows.sort(key=rank, reverse=key.descending)
    return rows
