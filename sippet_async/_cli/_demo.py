"""``sippet demo``: the main job end to end, against an embedded fake Sippet server.

On a server that enforces a rate limit and injects a realistic mix of faults (500s, 503s
and 429s with Retry-After, connections reset before the action runs, replies lost after
it committed), the demo

1. writes a CSV of 5,000 generated contacts (and two invalid rows) and imports it with the
   ``sippet import`` job: rate-limited, journaled, reconciled by phone;
2. exports every contact with ``client.iter``;
3. places 500 calls from a queue with ``CallWorker``;

then prints a summary checked against the fake server's own records: what was reported
created is what the server holds, with no duplicates and nothing lost. It uses only the
public API; the exit code is 0 only when every check holds.
"""

from __future__ import annotations

import asyncio
import collections
import csv
import random
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

from sippet_async import CallWorker, Outcome, SippetClient
from sippet_async._cli._import import ImportResult, import_file
from sippet_async.testing import FakeSippet, Faults

__all__ = ["run_demo"]

RATE: Final = 1000  # requests per second: the server's rolling-window limit and the client's
# About 3% of requests go wrong, in every way docs/protocol.md §12.5 distinguishes. 429s and
# 503s are the rarest: each one pauses the whole client for its Retry-After and lowers
# its rate (as it should), so a client that keeps to the limit rarely meets them.
FAULTS: Final = Faults(p_500=0.01, p_503=0.001, p_429=0.001, p_reset_before=0.01,
                       p_lost_after_commit=0.005, retry_after=0.1, rate_limit=RATE)
_FIRST: Final = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken")
_LAST: Final = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen")
_COMPANIES: Final = ("Analytical Engines", "Compilers Inc", "Bletchley", "")
_BAD_ROWS: Final = (("No Phone", "", "Nowhere"), ("Bad Phone", "555-0100", "Nowhere"))


def _say(text: str = "") -> None:
    print(text, flush=True)


class DemoFailure(Exception):
    """The demo saw something the server's own records contradict."""


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise DemoFailure(what)
    _say(f"  ok: {what}")


def _phone(n: int) -> str:
    return f"+1555{n:07d}"


def _write_csv(path: Path, rng: random.Random, contacts: int) -> None:
    """``contacts`` generated rows, with the invalid rows somewhere in the middle."""
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["name", "phone", "company"])
        bad_at = {contacts // 3: _BAD_ROWS[0], 2 * contacts // 3: _BAD_ROWS[1]}
        for n in range(contacts):
            if n in bad_at:
                writer.writerow(bad_at[n])
            writer.writerow([f"{rng.choice(_FIRST)} {rng.choice(_LAST)}", _phone(n),
                             rng.choice(_COMPANIES)])


async def run_demo(*, seed: int = 7, contacts: int = 5000, calls: int = 500) -> int:
    """Run the demo; returns the process exit code (0 when every check holds)."""
    # A timed showcase: run as production does, even under PYTHONDEVMODE (whose asyncio
    # debug mode makes every callback ~6x slower).
    asyncio.get_running_loop().set_debug(False)
    rng = random.Random(seed)
    key = "sk_test_" + secrets.token_hex(16)
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="sippet-demo-") as folder:
            async with FakeSippet(key, seed=seed, faults=FAULTS) as server, SippetClient(
                key, base_url=server.url, rate_limit=RATE
            ) as client:
                _say(f"fake Sippet at {server.url}: at most {RATE} requests per rolling "
                     "second, and ~3% of requests fail (500, 503, 429, resets, lost replies)")
                _say(f"client: {client!r}, rate_limit={RATE}")
                imported = await _import(client, server, Path(folder), rng, contacts)
                exported = await _export(client, server)
                placed = await _calls(client, server, exported, calls)
                _summary(client, server, imported, len(exported), placed)
    except DemoFailure as exc:
        print(f"demo FAILED: {exc}", file=sys.stderr)
        return 1
    _say(f"\ndemo finished in {time.perf_counter() - started:.1f}s")
    return 0


async def _import(client: SippetClient, server: FakeSippet, folder: Path,
                  rng: random.Random, contacts: int) -> ImportResult:
    path = folder / "contacts.csv"
    _write_csv(path, rng, contacts)
    _say(f"\n1. import {path.name}: {contacts:,} contacts and {len(_BAD_ROWS)} invalid rows "
         "(sippet import create_contact contacts.csv --map fullName=name,phoneE164=phone,"
         "company=company --reconcile-by phoneE164)")
    result = await import_file(
        client, "create_contact", path,
        mapping={"fullName": "name", "phoneE164": "phone", "company": "company"},
        reconcile_by="phoneE164", progress=sys.stderr.isatty(),
    )
    report = result.report
    _say(f"  {report.summary()}")
    if result.rejects is not None:
        for line in result.rejects.read_text().splitlines():
            _say(f"  rejected: {line[:150]}")

    phones = collections.Counter(c["phoneE164"] for c in server.contacts)
    _check(report.succeeded == len(server.contacts),
           f"created = succeeded: the server holds {len(server.contacts):,} contacts, "
           f"{report.succeeded:,} were reported created")
    _check(all(count == 1 for count in phones.values()), "duplicates = 0: one contact per phone")
    lost = [n for n in range(contacts) if _phone(n) not in phones]
    failed_good = report.failed - len(_BAD_ROWS)
    _check(len(lost) == failed_good and report.unknown == 0,
           f"lost = 0: every row is on the server or reported ({failed_good} good rows "
           "reported failed, 0 unknown)")
    _check(report.failed >= len(_BAD_ROWS) and result.rejected == report.failed,
           f"the {len(_BAD_ROWS)} invalid rows were rejected with the server's message")
    creates = [r for r in server.requests if r.action == "create_contact" and r.executed]
    _check(len(creates) == len(server.contacts),
           f"no create ran twice ({report.reconciled} lost replies reconciled by phone)")
    return result


async def _export(client: SippetClient, server: FakeSippet) -> list[dict[str, Any]]:
    _say("\n2. export every contact with client.iter (keyset pages of 500)")
    records = [record async for record in client.iter(
        "list_contacts", fields=["id", "fullName", "phoneE164"], page_size=500)]
    ids = collections.Counter(r["id"] for r in records)
    _check(len(records) == len(server.contacts),
           f"exported {len(records):,} contacts = the server's {len(server.contacts):,}")
    _check(set(ids) == {c["id"] for c in server.contacts} and set(ids.values()) == {1},
           "each contact exactly once")
    return records


async def _calls(client: SippetClient, server: FakeSippet, contacts: list[dict[str, Any]],
                 calls: int) -> dict[str, Outcome[dict[str, Any]]]:
    _say(f"\n3. place {calls} calls from a queue with CallWorker (at most once each)")
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for contact in contacts[:calls]:
        queue.put_nowait({"contactId": contact["id"], "toE164": contact["phoneE164"]})
    outcomes: dict[str, Outcome[dict[str, Any]]] = {}

    async def placed(request: dict[str, Any]) -> Any:
        # Each number is called once here, so a call to it means this request's call.
        found = await client.run("list_calls", fields=["id", "toE164"],
                                 filter={"toE164": {"eq": request["toE164"]}})
        return found[0] if found else None

    def record(outcome: Outcome[dict[str, Any]]) -> None:
        outcomes[outcome.item["toE164"]] = outcome
        if len(outcomes) == calls:
            worker.stop()  # the queue is empty: a real worker would keep waiting

    worker = CallWorker(client, record, concurrency=32, reconcile=placed)
    report = await worker.run(queue)
    await queue.join()
    _say(f"  {report.summary()}")

    numbers = collections.Counter(c["toE164"] for c in server.calls)
    succeeded = {n for n, o in outcomes.items() if o.status == "succeeded"}
    _check(len(outcomes) == calls, f"{calls} requests, {calls} outcomes")
    _check(len(server.calls) == len(succeeded),
           f"created = succeeded: the server holds {len(server.calls)} calls")
    _check(all(count == 1 for count in numbers.values()), "duplicates = 0: no number rang twice")
    _check(set(numbers) == succeeded and report.unknown == 0,
           "lost = 0: every call reported placed is on the server, none unknown")
    return outcomes


def _summary(client: SippetClient, server: FakeSippet, imported: ImportResult,
             exported: int, placed: dict[str, Outcome[dict[str, Any]]]) -> None:
    faults = collections.Counter(r.fault for r in server.requests if r.fault)
    counters = client.counters
    report = imported.report
    calls_ok = sum(o.status == "succeeded" for o in placed.values())
    _say("\nsummary, checked against the fake server's own records:")
    _say(f"  {'':<22}{'reported':>10}{'server':>10}{'duplicates':>12}{'lost':>6}")
    _say(f"  {'contacts imported':<22}{report.succeeded:>10,}{len(server.contacts):>10,}"
         f"{0:>12}{0:>6}")
    _say(f"  {'rows rejected':<22}{report.failed:>10,}{'-':>10}")
    _say(f"  {'contacts exported':<22}{exported:>10,}{len(server.contacts):>10,}{0:>12}{0:>6}")
    _say(f"  {'calls placed':<22}{calls_ok:>10,}{len(server.calls):>10,}{0:>12}{0:>6}")
    _say(f"  requests: {len(server.requests):,}; faults injected: "
         + ", ".join(f"{kind} {n}" for kind, n in sorted(faults.items())))
    _say(f"  client retries: {dict(sorted(counters.retries.items()))}, 429s: "
         f"{counters.rate_limited}, unknown outcomes resolved by lookup: {report.reconciled}")
