"""Many concurrent calls through one client: all succeed, never more than the cap in flight."""

from __future__ import annotations

import asyncio

from sippet_async import SippetClient
from sippet_async.testing import FakeSippet

CALLS = 200
CAP = 8


async def test_200_concurrent_runs_with_a_cap_of_8(server: FakeSippet, api_key: str) -> None:
    """200 concurrent runs all succeed, and the server never sees more than 8 at once."""
    server.latency = 0.005  # keep requests in flight long enough to overlap
    peak = 0
    done = asyncio.Event()

    async def watch() -> None:
        # A request is in flight on the server until it has answered (status is set then);
        # the client frees a slot only after reading that answer, so this count is exact
        # whenever it is sampled.
        nonlocal peak
        while not done.is_set():
            peak = max(peak, sum(1 for r in server.requests if r.status is None))
            await asyncio.sleep(0)

    async with SippetClient(api_key, base_url=server.url, max_concurrency=CAP) as client:
        watcher = asyncio.create_task(watch())
        try:
            results = await asyncio.gather(*(
                client.run("list_contacts", fields=["id"], page={"limit": 1, "offset": i % 20})
                for i in range(CALLS)
            ))
        finally:
            done.set()
            await watcher
    assert len(results) == CALLS
    assert [r["offset"] for r in results] == [i % 20 for i in range(CALLS)]
    assert len(server.requests) == CALLS
    assert all(r.status == 200 for r in server.requests)
    assert 1 <= peak <= CAP
