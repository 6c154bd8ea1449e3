"""Offset and keyset pagination (docs/protocol.md §5), over HTTP and as pure rules."""

from __future__ import annotations

import asyncio
import base64
import itertools
import uuid
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from sippet_async.testing import FakeSippet
from sippet_async.testing._pages import PageRequest, encode_cursor, keyset_page
from sippet_async.testing._rules import compare_values, parse_sort, sort_records, sort_values
from sippet_async.testing._schema import CONTACT

from ._support import API_KEY, SEEDED, Rpc, Walk

LIST: dict[str, Any] = {"action": "list_contacts", "fields": ["id", "fullName"]}


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["id"] for row in rows]


async def test_offset_walk_sees_every_record_once(server: FakeSippet, rpc: Rpc) -> None:
    """offset += len(results) while hasMore visits each record exactly once, in order (§5.4)."""
    seen: list[dict[str, Any]] = []
    offset = 0
    while True:
        data = (await rpc({**LIST, "page": {"limit": 7, "offset": offset}}))["data"]
        assert set(data) == {"type", "results", "hasMore", "limit", "offset", "count"}
        assert (data["type"], data["limit"], data["offset"], data["count"]) == (
            "offset",
            7,
            offset,
            None,
        )
        seen.extend(data["results"])
        offset += len(data["results"])
        if not data["hasMore"]:
            break
    assert ids(seen) == [c["id"] for c in server.contacts]


async def test_offset_count_and_past_the_end(rpc: Rpc) -> None:
    """count: true gives the filtered total; an offset past the end is an empty last page."""
    data = (await rpc({**LIST, "page": {"offset": 0, "limit": 3, "count": True}}))["data"]
    assert (data["count"], data["hasMore"]) == (SEEDED, True)
    data = (await rpc({**LIST, "page": {"offset": 500}}))["data"]
    assert (data["results"], data["hasMore"], data["limit"]) == ([], False, 100)


async def test_keyset_walk_forward_and_backward(server: FakeSippet, rpc: Rpc) -> None:
    """Forward via nextPage, then backward via previousPage, each see every record once."""
    everyone = [c["id"] for c in server.contacts]
    forward: list[dict[str, Any]] = []
    page: dict[str, Any] = {"limit": 4}
    while True:
        last = (await rpc({**LIST, "page": page}))["data"]
        forward.extend(last["results"])
        if not last["hasMore"]:
            break
        page = {"limit": 4, "after": last["nextPage"]}
    assert ids(forward) == everyone

    backward = list(last["results"])
    while True:
        page = {"limit": 4, "before": last["previousPage"]}
        last = (await rpc({**LIST, "page": page}))["data"]
        assert last["before"] == page["before"]
        backward = last["results"] + backward
        if not last["hasMore"]:
            break
    assert ids(backward) == everyone


async def test_keyset_page_fields(rpc: Rpc) -> None:
    """Cursors echo back; previousPage/nextPage are the first/last records' cursors."""
    first = (await rpc({**LIST, "page": {"limit": 2, "count": True}}))["data"]
    assert (first["after"], first["before"], first["count"], first["hasMore"]) == (
        None,
        None,
        SEEDED,
        True,
    )
    second = (await rpc({**LIST, "page": {"limit": 2, "after": first["nextPage"]}}))["data"]
    assert second["after"] == first["nextPage"]
    back = (await rpc({**LIST, "page": {"limit": 5, "before": second["previousPage"]}}))["data"]
    assert ids(back["results"]) == ids(first["results"])
    assert back["hasMore"] is False
    empty = (await rpc({**LIST, "filter": {"fullName": "nobody"}, "page": {"limit": 2}}))["data"]
    assert (empty["results"], empty["hasMore"], empty["previousPage"], empty["nextPage"]) == (
        [],
        False,
        None,
        None,
    )


async def test_cursors_are_standard_base64_with_plus_slash_and_padding(rpc: Rpc) -> None:
    """Cursors use the standard alphabet, including '+', '/' and '=' (§5.3)."""
    data = (await rpc({**LIST, "page": {"limit": 3}}))["data"]
    for cursor in (data["previousPage"], data["nextPage"]):
        assert "+" in cursor
        assert "/" in cursor
        assert cursor.endswith("==")
        base64.b64decode(cursor, validate=True)


async def test_cursor_from_another_sort_is_invalid_keyset(rpc: Rpc) -> None:
    """A cursor made under a different number of sort keys is rejected as invalid_keyset."""
    data = (await rpc({**LIST, "sort": "company,fullName", "page": {"limit": 2}}))["data"]
    envelope = await rpc({**LIST, "page": {"after": data["nextPage"]}})
    assert envelope["errors"][0]["type"] == "invalid_keyset"


async def test_limit_is_clamped_to_max_page_size(rpc: Rpc) -> None:
    """A limit above max_page_size is silently clamped (§5.1)."""
    async with FakeSippet(API_KEY, seed_contacts=12, max_page_size=5) as small:
        data = (await rpc({**LIST, "page": {"limit": 1000}}, target=small))["data"]
        assert (data["limit"], len(data["results"]), data["hasMore"]) == (5, 5, True)
        data = (await rpc(LIST, target=small))["data"]
        assert data["limit"] == 5


async def test_inserts_during_keyset_walk_never_duplicate(server: FakeSippet, rpc: Rpc) -> None:
    """Rows inserted mid-walk, before or after the cursor, never repeat; later ones show up."""
    payload = {**LIST, "sort": "fullName"}
    first = (await rpc({**payload, "page": {"limit": 5}}))["data"]
    cursor = first["nextPage"]
    for name in ("AAA first", "zzz last", first["results"][-1]["fullName"]):
        await rpc({"action": "create_contact", "input": {"fullName": name, "phoneE164": "+15557"}})
    rest: list[dict[str, Any]] = []
    page: dict[str, Any] = {"limit": 5, "after": cursor}
    while True:
        data = (await rpc({**payload, "page": page}))["data"]
        rest.extend(data["results"])
        if not data["hasMore"]:
            break
        page = {"limit": 5, "after": data["nextPage"]}
    walked = ids(first["results"]) + ids(rest)
    assert len(walked) == len(set(walked))
    names = [row["fullName"] for row in rest]
    assert "zzz last" in names
    assert "AAA first" not in names
    tie = server.contacts[-1]["id"]  # same fullName as the cursor row: the id decides
    assert (tie in walked) == (tie > first["results"][-1]["id"])
    assert len(walked) == SEEDED + 1 + (tie in walked)


async def test_keyset_walk_during_concurrent_inserts(
    server: FakeSippet, rpc: Rpc, walk: Walk
) -> None:
    """A walk running alongside concurrent creates sees every original record exactly once."""
    originals = {c["id"] for c in server.contacts}
    creates = [
        rpc({"action": "create_contact", "input": {"fullName": f"N{n}", "phoneE164": "+15558"}})
        for n in range(40)
    ]
    walking = asyncio.ensure_future(walk({**LIST, "sort": "-fullName"}, 3))
    await asyncio.gather(walking, *creates)
    seen = ids(walking.result())
    assert len(seen) == len(set(seen))
    assert originals <= set(seen)


# --- pure rules: property test ---

NAMES = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d"]))


def _contact(name: str | None, n: int) -> dict[str, Any]:
    return {
        "id": str(uuid.UUID(int=n)),
        "fullName": "x",
        "company": name,
        "insertedAt": f"2024-01-01T00:00:{n % 60:02d}.{n:06d}Z",
    }


@settings(max_examples=150, deadline=None)
@given(
    start=st.lists(NAMES, max_size=30),
    inserts=st.lists(st.lists(NAMES, max_size=4), max_size=8),
    limit=st.integers(1, 6),
    sort=st.sampled_from(["company", "-company", "++company", "--company,-insertedAt"]),
)
def test_keyset_walk_property(
    start: list[str | None], inserts: list[list[str | None]], limit: int, sort: str
) -> None:
    """For any page size, sort and inserts between pages, each original row is seen once."""
    keys = parse_sort(CONTACT, sort)
    rows = [_contact(name, n) for n, name in enumerate(start)]
    ordered = [sort_values(row, keys) for row in sort_records(rows, keys)]
    assert all(compare_values(a, b, keys) < 0 for a, b in itertools.pairwise(ordered))
    originals = {row["id"] for row in rows}
    counter = len(rows)
    seen: list[str] = []
    request = PageRequest(limit)
    batches = iter(inserts)
    while True:
        page = keyset_page(sort_records(rows, keys), keys, request, dict, CONTACT)
        seen.extend(ids(page["results"]))
        if not page["hasMore"]:
            break
        for name in next(batches, []):
            rows.append(_contact(name, counter))
            counter += 1
        request = PageRequest(limit, after=page["nextPage"])
    assert len(seen) == len(set(seen))
    assert originals <= set(seen)


def test_cursor_roundtrip_is_json_of_sort_values() -> None:
    """A cursor is Base64 of the sort values (id last), padded; opaque but stable."""
    cursor = encode_cursor(["2024-01-01T00:00:00.000000Z", "id-1"])
    raw = base64.b64decode(cursor)
    assert msgspec.json.decode(raw[3:]) == ["2024-01-01T00:00:00.000000Z", "id-1"]
