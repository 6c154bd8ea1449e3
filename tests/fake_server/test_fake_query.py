"""Filter and sort rules over the seeded contacts (docs/protocol.md §3.3, §3.4).

Expected answers are computed here in plain Python from ``server.contacts``, independently
of the server's own rule code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sippet_async.testing import FakeSippet

from ._support import Rpc

Contact = dict[str, Any]


async def listed(rpc: Rpc, **query: Any) -> list[str]:
    payload = {"action": "list_contacts", "fields": ["id"], "page": {"limit": 500}, **query}
    envelope = await rpc(payload)
    assert envelope["success"] is True, envelope
    return [row["id"] for row in envelope["data"]["results"]]


def ids_where(server: FakeSippet, keep: Callable[[Contact], bool]) -> list[str]:
    """Ids of matching contacts in the default order (insertedAt ascending)."""
    return [c["id"] for c in sorted(server.contacts, key=lambda c: c["insertedAt"]) if keep(c)]


FILTERS: list[tuple[str, Any, Callable[[Contact, list[Contact]], bool]]] = [
    ("eq", {"company": {"eq": "Acme"}}, lambda c, _: c["company"] == "Acme"),
    ("eq-shorthand", {"company": "Acme"}, lambda c, _: c["company"] == "Acme"),
    ("eq-alias", {"company": {"equals": "Acme"}}, lambda c, _: c["company"] == "Acme"),
    (
        "not-eq-skips-nil",
        {"company": {"notEq": "Acme"}},
        lambda c, _: c["company"] not in (None, "Acme"),
    ),
    ("eq-nil-matches-nothing", {"company": {"eq": None}}, lambda c, _: False),
    (
        "in",
        {"company": {"in": ["Acme", "Hooli"]}},
        lambda c, _: c["company"] in ("Acme", "Hooli"),
    ),
    (
        "greater-than",
        {"insertedAt": {"greaterThan": "2024-01-01T00:00:10Z"}},
        lambda c, all_: c["insertedAt"] > all_[10]["insertedAt"],
    ),
    (
        "greater-than-or-equal",
        {"insertedAt": {"greaterThanOrEqual": "2024-01-01T00:00:10.000000+00:00"}},
        lambda c, all_: c["insertedAt"] >= all_[10]["insertedAt"],
    ),
    (
        "less-than",
        {"insertedAt": {"lessThan": "2024-01-01T00:00:03"}},
        lambda c, all_: c["insertedAt"] < all_[3]["insertedAt"],
    ),
    (
        "range-with-aliases",
        {"insertedAt": {"gt": "2024-01-01T00:00:04Z", "lte": "2024-01-01T00:00:08Z"}},
        lambda c, all_: all_[4]["insertedAt"] < c["insertedAt"] <= all_[8]["insertedAt"],
    ),
    ("is-nil", {"email": {"isNil": True}}, lambda c, _: c["email"] is None),
    ("is-not-nil", {"email": {"is_nil": False}}, lambda c, _: c["email"] is not None),
    (
        "fields-are-and-ed",
        {"company": {"eq": "Acme"}, "email": {"isNil": False}},
        lambda c, _: c["company"] == "Acme" and c["email"] is not None,
    ),
    (
        "or",
        {"or": [{"company": {"eq": "Acme"}}, {"tags": {"has": "vip"}}]},
        lambda c, _: c["company"] == "Acme" or "vip" in c["tags"],
    ),
    (
        "and",
        {"and": [{"tags": {"has": "vip"}}, {"tags": {"has": "lead"}}]},
        lambda c, _: {"vip", "lead"} <= set(c["tags"]),
    ),
    (
        "not-keeps-sql-nulls-out",
        {"not": [{"company": {"eq": "Acme"}}]},
        lambda c, _: c["company"] not in (None, "Acme"),
    ),
    (
        "nested",
        {
            "and": [
                {"or": [{"company": "Globex"}, {"company": "Initech"}]},
                {"not": [{"email": {"isNil": True}}]},
            ]
        },
        lambda c, _: c["company"] in ("Globex", "Initech") and c["email"] is not None,
    ),
    (
        "snake-keys",
        {"full_name": {"not_eq": "Ada Lovelace"}},
        lambda c, _: c["fullName"] != "Ada Lovelace",
    ),
    ("empty", {}, lambda c, _: True),
]


@pytest.mark.parametrize(("filter_", "keep"), [f[1:] for f in FILTERS], ids=[f[0] for f in FILTERS])
async def test_filter(
    server: FakeSippet,
    rpc: Rpc,
    filter_: Any,
    keep: Callable[[Contact, list[Contact]], bool],
) -> None:
    """The filter keeps exactly the contacts a plain-Python reading of §3.3 keeps."""
    contacts = server.contacts
    expected = ids_where(server, lambda c: keep(c, contacts))
    assert await listed(rpc, filter=filter_) == expected


def expected_order(
    contacts: list[Contact], field: str, *, desc: bool, nils_first: bool
) -> list[str]:
    by_id = sorted(contacts, key=lambda c: c["id"])
    present = sorted(
        (c for c in by_id if c[field] is not None), key=lambda c: c[field], reverse=desc
    )
    nils = [c for c in by_id if c[field] is None]
    ordered = nils + present if nils_first else present + nils
    return [c["id"] for c in ordered]


@pytest.mark.parametrize(
    ("sort", "desc", "nils_first"),
    [
        ("company", False, False),
        ("+company", False, False),
        ("-company", True, True),
        ("++company", False, True),
        ("--company", True, False),
        ("-email", True, True),
        ("fullName", False, False),
    ],
)
async def test_sort_prefixes_and_id_tiebreak(
    server: FakeSippet, rpc: Rpc, sort: str, desc: bool, nils_first: bool
) -> None:
    """Prefixes set direction and nil placement; ties fall back to id ascending (§3.4)."""
    field = sort.lstrip("+-")
    expected = expected_order(server.contacts, field, desc=desc, nils_first=nils_first)
    assert await listed(rpc, sort=sort) == expected


async def test_sort_list_equals_comma_string(rpc: Rpc) -> None:
    """An array of sort items is the same as the comma-joined string."""
    as_list = await listed(rpc, sort=["++company", "-insertedAt"])
    assert as_list == await listed(rpc, sort="++company, -insertedAt")
    assert as_list != await listed(rpc, sort="++company")


async def test_default_and_snake_case_sort(server: FakeSippet, rpc: Rpc) -> None:
    """No sort means insertedAt ascending; `-inserted_at` reverses it."""
    oldest_first = ids_where(server, lambda c: True)
    assert await listed(rpc) == oldest_first
    assert await listed(rpc, sort="-inserted_at") == oldest_first[::-1]


async def test_filter_and_sort_on_calls(rpc: Rpc) -> None:
    """list_calls filters on enum status and sorts like contacts."""
    made = []
    for number in ("+15550000002", "+15550000001", "+15550000003"):
        made.append(
            (await rpc({"action": "create_call", "input": {"toE164": number}, "fields": ["id"]}))[
                "data"
            ]["id"]
        )
    await rpc({"action": "end_call", "input": {"id": made[0]}})
    data = (
        await rpc(
            {
                "action": "list_calls",
                "fields": ["toE164", "status"],
                "filter": {"status": {"in": ["queued", "ringing"]}},
                "sort": "toE164",
            }
        )
    )["data"]
    assert data == [
        {"toE164": "+15550000001", "status": "queued"},
        {"toE164": "+15550000003", "status": "queued"},
    ]
