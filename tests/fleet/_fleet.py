"""What the fleet's rate-limit tests share: clients on one key driven against one fake
server, and the figures read from the server's own records."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from sippet_async import SippetClient
from sippet_async.testing import RecordedRequest

KEY = "sk_test_fleet_0123456789"
# The tests check that limiters share one schedule, not the jitter budget (bench_fleet
# measures that with the default 1.5%): on a loaded 2-core machine a request can reach the
# server 20-30 ms out of step with its slot, so their limiters leave a wider margin.
MARGIN = 0.05



async def drive(clients: Sequence[SippetClient], calls: int, *, tasks: int = 8,
                after: Callable[[int], None] | None = None) -> int:
    """``tasks`` tasks per client call ``list_calls`` until ``calls`` calls have been made in
    all; ``after(n)`` is told of the n-th call done. Returns the calls that succeeded."""
    started = done = succeeded = 0

    async def worker(client: SippetClient) -> None:
        nonlocal started, done, succeeded
        while started < calls:
            started += 1
            await client.run("list_calls", fields=["id"])
            succeeded += 1
            done += 1
            if after is not None:
                after(done)

    await asyncio.gather(*(worker(client) for client in clients for _ in range(tasks)))
    return succeeded


def statuses(requests: Sequence[RecordedRequest]) -> dict[int | None, int]:
    """How many requests got each status."""
    counts: dict[int | None, int] = {}
    for request in requests:
        counts[request.status] = counts.get(request.status, 0) + 1
    return counts
