"""A naive Redis Streams call worker, for comparison only: no per-job outcome record.

    python _naive_call_worker.py REDIS_URL STREAM BASE_URL RATE   (key in $SIPPET_SECRET_KEY)

It reads from the consumer group, dials, and acknowledges on success; a failed or unknown
dial stays pending, and any pending entry idle for 2 s is taken over (XAUTOCLAIM) and
dialled again: what a queue that "may run a job twice" does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from sippet_async import SippetClient, SippetError

GROUP = "dialers"
IDLE_MS = 2000
CONCURRENCY = 16


async def main(url: str, stream: str, base_url: str, rate: float) -> None:
    me = f"naive-{os.getpid()}"
    slots = asyncio.Semaphore(CONCURRENCY)
    async with aioredis.Redis.from_url(url) as r, SippetClient(
            base_url=base_url, rate_limit=rate, timeout=1.0) as client:
        with contextlib.suppress(ResponseError):  # BUSYGROUP: another worker made it
            await r.xgroup_create(stream, GROUP, id="0", mkstream=True)
        await r.set(f"{stream}:alive:{me}", b"1")

        async def dial(entry: bytes, fields: dict[bytes, bytes]) -> None:
            try:
                item: Any = msgspec.json.decode(fields[b"item"])
                await client.run("create_call", input=item, fields=["id"])
                await r.xack(stream, GROUP, entry)
            except SippetError:
                pass  # left pending: redelivered after IDLE_MS, dialled again
            finally:
                slots.release()

        tasks: set[asyncio.Task[None]] = set()
        while True:
            _, claimed, _ = await r.xautoclaim(stream, GROUP, me, IDLE_MS, count=CONCURRENCY)
            read = await r.xreadgroup(GROUP, me, {stream: ">"}, count=1, block=200)
            entries = list(claimed) + [e for _, batch in read or () for e in batch]
            for entry, fields in entries:
                if not fields:
                    continue
                await slots.acquire()
                task = asyncio.create_task(dial(entry, fields))
                tasks.add(task)
                task.add_done_callback(tasks.discard)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
