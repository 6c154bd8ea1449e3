"""RedisRateLimit across OS processes: separate interpreters on one key share one exact
limit, read from the fake server's records."""

from __future__ import annotations

import asyncio
import sys

import pytest

from sippet_async.testing import FakeSippet, Faults, worst_window

from ._fleet import KEY, MARGIN, statuses

pytestmark = pytest.mark.slow  # starts other Python processes

RATE = 40
CALLS = 60  # per process

_WORKER = """
import asyncio, sys
from sippet_async import SippetClient
from sippet_async.redis import RedisRateLimit

async def main(url, redis_url, key, rate, calls, margin):
    limit = RedisRateLimit(redis_url, key="acct", rate=rate, margin=margin)
    async with SippetClient(key, base_url=url, rate_limit=limit, max_concurrency=8) as client:
        left = calls
        async def worker():
            nonlocal left
            while left > 0:
                left -= 1
                await client.run("list_calls", fields=["id"])
        await asyncio.gather(*(worker() for _ in range(8)))
    print(limit.round_trips)

asyncio.run(main(*sys.argv[1:4], float(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])))
"""


async def test_processes_on_one_key_share_one_exact_limit(redis_url: str) -> None:
    """Three processes, one key: every call succeeds with no 429 and no rolling second over
    R, the first included; about 1 Redis round trip per 4 requests or fewer."""
    async with FakeSippet(KEY, faults=Faults(rate_limit=RATE)) as server:
        processes = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-c", _WORKER, server.url, redis_url, KEY, str(RATE),
                str(CALLS), str(MARGIN), stdout=asyncio.subprocess.PIPE)
            for _ in range(3)]
        outputs = [await process.communicate() for process in processes]
        assert [process.returncode for process in processes] == [0, 0, 0]
        requests = server.requests
    assert statuses(requests) == {200: 3 * CALLS}
    assert worst_window([request.received_at for request in requests]) <= RATE
    round_trips = sum(int(out.split()[-1]) for out, _ in outputs)
    assert round_trips <= 3 * CALLS / 4
