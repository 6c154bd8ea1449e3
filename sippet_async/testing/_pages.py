"""Pagination rules (docs/protocol.md §5): page options, offset and keyset pages, cursors.

The fake's list actions behave like an Ash action with ``pagination required? true,
default_limit 100, offset? true, keyset? true`` and ``default_page_type :keyset``: with no
``offset`` the answer is a keyset page, even when no ``page`` is sent. Keyset pages compare
sort values, never positions, so rows inserted during a walk are never returned twice.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from . import _error_objects as E
from ._rules import Record, SortKey, compare_values, sort_values
from ._schema import Resource, snake

DEFAULT_LIMIT: Final = 100  # the action's default_limit (§5.1)
# Cursor bytes start with these, whose Base64 is "+/+/", and are padded to end in "==":
# every cursor exercises the characters a careless client would mangle (§5.3).
_MAGIC: Final = b"\xfb\xff\xbf"
_PAGE_KEYS: Final = frozenset({"limit", "offset", "after", "before", "count"})


@dataclass(frozen=True, slots=True)
class PageRequest:
    """The validated ``page`` object; ``limit`` is already defaulted and clamped."""

    limit: int
    offset: int | None = None
    after: str | None = None
    before: str | None = None
    count: bool = False


def parse_page(page: dict[str, Any] | None, max_page_size: int) -> PageRequest:
    """Validate ``page`` values; bad ones are unmapped Ash errors (``internal_error``, §5.1)."""
    options = {snake(key): value for key, value in (page or {}).items()}
    if not options.keys() <= _PAGE_KEYS:
        raise E.unmapped()
    limit = options.get("limit")
    offset = options.get("offset")
    after, before = options.get("after"), options.get("before")
    count = options.get("count")
    if limit is None:
        limit = DEFAULT_LIMIT
    if not _is_int(limit) or limit < 1:
        raise E.unmapped()
    if offset is not None and (not _is_int(offset) or offset < 0):
        raise E.unmapped()
    if not all(c is None or isinstance(c, str) for c in (after, before)):
        raise E.unmapped()
    if count is not None and not isinstance(count, bool):
        raise E.unmapped()
    return PageRequest(min(limit, max_page_size), offset, after, before, bool(count))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def encode_cursor(values: Sequence[Any]) -> str:
    """Standard Base64 of the sort values (``id`` last) — opaque to clients."""
    raw = _MAGIC + msgspec.json.encode(list(values))
    raw += b" " * ((1 - len(raw)) % 3)  # length ≡ 1 (mod 3): the text ends in "=="
    return base64.b64encode(raw).decode("ascii")


def decode_cursor(cursor: str, keys: Sequence[SortKey], resource: Resource) -> list[Any]:
    """Sort values from a cursor made under ``keys``, else ``invalid_keyset``."""
    try:
        raw = base64.b64decode(cursor, validate=True)
        if not raw.startswith(_MAGIC):
            raise ValueError(cursor)
        values = msgspec.json.decode(raw[len(_MAGIC) :])
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise E.RpcFailure(E.invalid_keyset(cursor)) from None
    if not isinstance(values, list) or len(values) != len(keys):
        raise E.RpcFailure(E.invalid_keyset(cursor))
    for value, key in zip(values, keys, strict=True):
        attribute = resource.attribute(key.field)
        if attribute is None or not _fits(value, attribute.type == "tags"):
            raise E.RpcFailure(E.invalid_keyset(cursor))
    if values[-1] is None:  # the id tiebreak is never nil
        raise E.RpcFailure(E.invalid_keyset(cursor))
    return values


def _fits(value: object, is_list: bool) -> bool:
    if value is None:
        return True
    if is_list:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, str)


def offset_page(
    rows: Sequence[Record], request: PageRequest, render: Callable[[Record], Record]
) -> dict[str, Any]:
    """An offset page (§5.2) over the sorted, filtered ``rows``."""
    start = request.offset or 0
    chunk = rows[start : start + request.limit]
    return {
        "type": "offset",
        "results": [render(row) for row in chunk],
        "hasMore": start + len(chunk) < len(rows),
        "limit": request.limit,
        "offset": start,
        "count": len(rows) if request.count else None,
    }


def keyset_page(
    rows: Sequence[Record],
    keys: Sequence[SortKey],
    request: PageRequest,
    render: Callable[[Record], Record],
    resource: Resource,
) -> dict[str, Any]:
    """A keyset page (§5.3): rows strictly after ``after`` and/or strictly before ``before``.

    With only ``before`` the page holds the rows closest to the cursor, in normal order, and
    ``hasMore`` says whether rows remain further back.
    """
    low, high = 0, len(rows)
    if request.after is not None:
        low = _bisect(rows, decode_cursor(request.after, keys, resource), keys, inclusive=True)
    if request.before is not None:
        high = _bisect(rows, decode_cursor(request.before, keys, resource), keys, inclusive=False)
    high = max(low, high)
    if request.before is not None and request.after is None:
        start = max(low, high - request.limit)
        chunk, has_more = rows[start:high], start > low
    else:
        chunk, has_more = rows[low : low + request.limit], low + request.limit < high
    return {
        "type": "keyset",
        "results": [render(row) for row in chunk],
        "hasMore": has_more,
        "limit": request.limit,
        "after": request.after,
        "before": request.before,
        "count": len(rows) if request.count else None,
        "previousPage": encode_cursor(sort_values(chunk[0], keys)) if chunk else None,
        "nextPage": encode_cursor(sort_values(chunk[-1], keys)) if chunk else None,
    }


def _bisect(
    rows: Sequence[Record], cursor: Sequence[Any], keys: Sequence[SortKey], *, inclusive: bool
) -> int:
    """Index of the first row after the cursor (``inclusive``: rows equal to it count as before)."""
    low, high = 0, len(rows)
    while low < high:
        middle = (low + high) // 2
        order = compare_values(sort_values(rows[middle], keys), cursor, keys)
        if order < 0 or (inclusive and order == 0):
            low = middle + 1
        else:
            high = middle
    return low
