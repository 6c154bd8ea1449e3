"""Helpers of the fleet tests: a client that never waits, the by-number lookup, polling."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from sippet_async import RetryPolicy, SippetClient
from sippet_async.testing import FakeSippet

KEY: Final = "sk_test_fleet_suite_0123456789"
PHONE: Final = "+1555{:07d}"
# Each request of these tests takes milliseconds; a 2 s request timeout lets takeover
# (which waits longer than one request can take) happen within a few seconds.
TIMEOUT: Final = 2.0


def call(i: int) -> dict[str, Any]:
    """The ``i``-th distinct call request (its number identifies it)."""
    return {"toE164": PHONE.format(i)}


async def no_wait(seconds: float) -> None:
    """A retry sleep that returns after one loop turn."""
    await asyncio.sleep(0)


def client_for(server: FakeSippet | str, **options: Any) -> SippetClient:
    """A client for ``server`` whose retries never wait, with a short request timeout."""
    options.setdefault("retry", RetryPolicy(sleep=no_wait))
    options.setdefault("timeout", TIMEOUT)
    url = server if isinstance(server, str) else server.url
    return SippetClient(KEY, base_url=url, **options)


def by_number(client: SippetClient) -> Callable[[dict[str, Any]], Awaitable[Any]]:
    """The reconcile lookup: the call placed to this number, or None."""

    async def lookup(item: dict[str, Any]) -> Any:
        found = await client.run("list_calls", fields=["id", "toE164"],
                                 filter={"toE164": {"eq": item["toE164"]}})
        return found[0] if found else None

    return lookup


def dials(server: FakeSippet) -> collections.Counter[str]:
    """Calls placed per number, from the server's own records."""
    return collections.Counter(c["toE164"] for c in server.calls)


async def poll_until(condition: Callable[[], Awaitable[bool] | bool], *,
                     within: float = 30.0, every: float = 0.01) -> None:
    """Return once ``condition()`` holds (state another process or Redis changes cannot
    be awaited: this is polling a condition, with a deadline, not a timed wait)."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(every)
