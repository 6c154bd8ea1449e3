"""``sippet demo``: the client end to end against an embedded fake Sippet server.

It uses only the public API, prints what it does, and checks its results against the fake
server's own records, so a green demo means the client and the server agree.
"""

from __future__ import annotations

import random
import secrets
import sys
import time
from typing import Any

from sippet_async import InvalidInputError, NotFoundError, SippetClient
from sippet_async.testing import FakeSippet

__all__ = ["run_demo"]

_FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia")
_LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson")


def _say(text: str) -> None:
    print(text, flush=True)


def _contact(rng: random.Random, n: int) -> dict[str, Any]:
    return {
        "fullName": f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
        "phoneE164": f"+1555{n:07d}",
        "company": rng.choice(("Analytical Engines", "Compilers Inc", "Bletchley")),
        "tags": ["demo"],
    }


class DemoFailure(Exception):
    """The demo saw something the server's own records contradict."""


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise DemoFailure(what)
    _say(f"  ok: {what}")


async def run_demo(*, seed: int = 7, contacts: int = 25) -> int:
    """Run the demo; returns the process exit code (0 when every check holds)."""
    rng = random.Random(seed)
    key = "sk_test_" + secrets.token_hex(16)
    started = time.perf_counter()
    try:
        async with FakeSippet(api_key=key) as server, SippetClient(
            key, base_url=server.url
        ) as client:
            _say(f"fake Sippet at {server.url}; client {client!r}")
            await _crud(client, server, rng, contacts)
    except DemoFailure as exc:
        print(f"demo FAILED: {exc}", file=sys.stderr)
        return 1
    _say(f"demo finished in {time.perf_counter() - started:.2f}s")
    return 0


async def _crud(client: SippetClient, server: FakeSippet, rng: random.Random, n: int) -> None:
    _say(f"\n1. create {n} contacts")
    created = [
        await client.run("create_contact", input=_contact(rng, i), fields=["id", "fullName"])
        for i in range(n)
    ]
    _check(len(server.contacts) == n, f"the server holds {n} contacts")

    _say("\n2. list them, sorted and filtered, one page at a time")
    page = await client.run(
        "list_contacts",
        fields=["id", "fullName", "phoneE164"],
        sort="-phoneE164",
        page={"limit": 10, "offset": 0, "count": True},
    )
    _say(f"  page type={page['type']} results={len(page['results'])} "
         f"hasMore={page['hasMore']} count={page['count']}")
    _check(page["count"] == n and page["hasMore"], "the offset page counts every contact")
    phones = [record["phoneE164"] for record in page["results"]]
    _check(phones == sorted(phones, reverse=True), "results come sorted by -phoneE164")
    bletchley = await client.run(
        "list_contacts",
        fields=["id", "company"],
        filter={"company": {"eq": "Bletchley"}},
        page={"limit": 100},
    )
    expected = sum(1 for c in server.contacts if c.get("company") == "Bletchley")
    _check(len(bletchley["results"]) == expected,
           f"a filter on company finds the {expected} Bletchley contacts")

    _say("\n3. get, update and destroy one")
    first = created[0]
    got = await client.run("get_contact", input={"id": first["id"]}, fields=["id", "fullName"])
    _check(got == first, "get_contact returns what create_contact returned")
    updated = await client.run("update_contact", identity=first["id"],
                               input={"company": "Sippet"}, fields=["company"])
    _check(updated == {"company": "Sippet"}, "update_contact changed the company")
    await client.run("destroy_contact", identity=first["id"])
    try:
        await client.run("get_contact", input={"id": first["id"]}, fields=["id"])
    except NotFoundError as exc:
        _check(True, f"a destroyed contact is gone ({exc})")
    else:
        raise DemoFailure("get_contact found a destroyed contact")

    _say("\n4. validate before running, and typed errors")
    check = await client.validate("create_contact", input={"fullName": "No Phone"})
    _check(not check.ok, f"validate reports: {check.errors[0].render()}")
    try:
        await client.run("create_contact", input={"fullName": "Bad", "phoneE164": "12"},
                         fields=["id"])
    except InvalidInputError as exc:
        _check(exc.errors[0].fields == ("phoneE164",), f"InvalidInputError: {exc}")
    else:
        raise DemoFailure("an invalid phone was accepted")
    _check(len(server.contacts) == n - 1, f"the server holds {n - 1} contacts, none invalid")
