"""Helpers shared by the bulk tests: inputs, a reconcile lookup, checks against the server."""

from __future__ import annotations

import asyncio
import collections
import itertools
import os
import socket
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Final

from sippet_async import Outcome, RetryPolicy, SippetClient
from sippet_async.testing import FakeSippet, Faults

KEY: Final = "sk_test_bulk_suite_0123456789"
PHONE: Final = "+1555{:07d}"

# The fault mix of issue 5. Retry-After is the real 1 s: the clients of these tests wait
# through an injected sleep that returns at once, so nothing actually waits.
FAULTS: Final = Faults(p_500=0.05, p_429=0.05, p_reset_before=0.02, p_lost_after_commit=0.01,
                       retry_after=1.0)
# The same mix for the `sippet` command in its own process, which waits for real: a short
# Retry-After keeps those tests fast.
CLI_FAULTS: Final = Faults(p_500=0.05, p_429=0.05, p_reset_before=0.02,
                           p_lost_after_commit=0.01, retry_after=0.05)


# How often a test looks at something another process changes (a file, the server's records).
POLL: Final = 0.002


async def poll_until(condition: Callable[[], bool]) -> None:
    """Return once ``condition()`` holds, looking every POLL seconds (state that another
    process changes cannot be awaited; this is polling, not a timed wait)."""
    for _ in itertools.count():
        if condition():
            return
        await asyncio.sleep(POLL)


# Long enough that no held request is answered while a test waits for its process.
HOLD: Final = 3600.0


async def interrupt_held(server: FakeSippet, proc: asyncio.subprocess.Process,
                         signum: int) -> tuple[int, bytes | None, bytes | None]:
    """Hold every new request at the server, then send ``signum`` to ``proc``; return its
    exit code and output once it has ended.

    While held, the job cannot finish, however fast or slow the machine is, so the signal
    always lands mid-job (replies already on their way still arrive and are journalled).
    Held requests never execute; the server ends them when it stops.
    """
    latency = server.latency
    server.latency = HOLD
    try:
        if proc.returncode is None:
            proc.send_signal(signum)
        out, err = await proc.communicate()
    finally:
        server.latency = latency
    assert proc.returncode is not None
    return proc.returncode, out, err


def size(path: Path) -> int:
    """The file's size in bytes; 0 while it does not exist."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


async def no_wait(seconds: float) -> None:
    """A retry/pause sleep that returns after one loop turn."""
    await asyncio.sleep(0)


def client_for(server: FakeSippet | str, **options: Any) -> SippetClient:
    """A client for ``server`` whose retries and pauses never wait."""
    options.setdefault("retry", RetryPolicy(sleep=no_wait))
    url = server if isinstance(server, str) else server.url
    return SippetClient(KEY, base_url=url, **options)


def contact(i: int) -> dict[str, Any]:
    """The input of the ``i``-th distinct contact (its phone identifies it)."""
    return {"fullName": f"Person {i}", "phoneE164": PHONE.format(i)}


def contacts(n: int) -> Iterator[dict[str, Any]]:
    """``n`` distinct contact inputs, generated lazily."""
    return (contact(i) for i in range(n))


def call(i: int) -> dict[str, Any]:
    """The input of the ``i``-th distinct call (its number identifies it)."""
    return {"toE164": PHONE.format(i)}


class ByPhone:
    """The reconcile lookup of these tests: the contact with this phone, or None."""

    def __init__(self, client: SippetClient) -> None:
        self.client = client
        self.calls = 0

    async def __call__(self, item: dict[str, Any]) -> Any:
        self.calls += 1
        page = await self.client.run(
            "list_contacts", fields=["id", "phoneE164"],
            filter={"phoneE164": {"eq": item["phoneE164"]}}, page={"limit": 5},
        )
        results = page["results"]
        assert len(results) <= 1, f"duplicate contacts for {item['phoneE164']}: {results}"
        return results[0] if results else None


class Counting:
    """An input that counts how many items the job pulled."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.pulled = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(self.n):
            self.pulled += 1
            yield contact(i)


def phone_counts(server: FakeSippet) -> collections.Counter[str]:
    """How many contacts the server holds per phone."""
    return collections.Counter(c["phoneE164"] for c in server.contacts)


def assert_one_outcome_per_index(outcomes: Iterable[Outcome[Any]], n: int) -> None:
    """Exactly one outcome for each index 0..n-1."""
    indexes = collections.Counter(o.index for o in outcomes)
    assert sorted(indexes) == list(range(n))
    assert set(indexes.values()) == {1}


def assert_exactly_one_contact_per_phone(server: FakeSippet, n: int) -> None:
    """The server holds one contact per input phone: none missing, none duplicated."""
    counts = phone_counts(server)
    duplicated = {phone: k for phone, k in counts.items() if k > 1}
    assert not duplicated, f"duplicates: {list(duplicated.items())[:5]}"
    missing = [PHONE.format(i) for i in range(n) if PHONE.format(i) not in counts]
    assert not missing, f"{len(missing)} lost, e.g. {missing[:5]}"
    assert len(counts) == n


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on now (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
