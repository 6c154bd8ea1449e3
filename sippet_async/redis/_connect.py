"""The Redis connection of the call queue and ledger.

redis-py retries a command on a dropped connection (a Redis restart, a failover) for a few
seconds; past that, every redis-py connection error becomes ``RedisUnavailableError`` here,
chained with ``from``, so no redis exception reaches a caller.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sippet_async.redis._connection import RedisUnavailableError, shown_url

__all__ = ["connect", "translated"]

# A restart of a local Redis takes well under a second; 8 tries with backoff capped at
# 0.5 s ride out ~3 s of it before a command fails for good.
RETRIES: Final = 8
BACKOFF_CAP: Final = 0.5
BACKOFF_BASE: Final = 0.05
# Longer than the longest blocking read (BLOCK_MS in _queue), so a wait for jobs is never
# mistaken for a dead connection.
SOCKET_TIMEOUT: Final = 10.0
CONNECT_TIMEOUT: Final = 2.0


def connect(url: str) -> aioredis.Redis:
    """A client for ``url`` that rides out a short outage (nothing is sent until used)."""
    return aioredis.Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=BACKOFF_CAP, base=BACKOFF_BASE), RETRIES),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT,
        decode_responses=False,
    )


@asynccontextmanager
async def translated(url: str) -> AsyncIterator[None]:
    """Turn redis-py's connection errors into ``RedisUnavailableError``."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        shown = shown_url(url)
        raise RedisUnavailableError(f"Redis at {shown} is unreachable: {exc}",
                                    url=shown) from exc
