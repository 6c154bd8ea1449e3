"""RedisCallQueue against a real redis-server: dedupe by job id, typed errors, no Redis in
``import sippet_async``."""

from __future__ import annotations

import subprocess
import sys

import pytest
import redis

from sippet_async import UsageError
from sippet_async.redis import RedisCallQueue, RedisUnavailableError
from sippet_async.testing._outage import _free_port

from ._support import call


async def test_the_same_job_id_twice_is_one_job(redis_url: str) -> None:
    """put() with a job id already queued adds nothing and returns the same id."""
    async with RedisCallQueue[dict[str, str]](redis_url, stream="s", group="g") as queue:
        assert await queue.put(call(1), job_id="order-42") == "order-42"
        assert await queue.put(call(2), job_id="order-42") == "order-42"
        fresh = await queue.put(call(3))
        assert fresh != "order-42"
        assert await queue.outcome("order-42") is None  # pending: no outcome yet
    with redis.Redis.from_url(redis_url) as r:
        assert r.xlen("s") == 2
        entries = r.xrange("s")
        assert entries[0][1][b"job"] == b"order-42"
        assert b"+15550000001" in entries[0][1][b"item"]  # the first put's item is kept


async def test_bad_items_and_ids_are_usage_errors(redis_url: str) -> None:
    """A job id or an item the queue cannot keep is refused before any I/O."""
    async with RedisCallQueue[object](redis_url) as queue:
        with pytest.raises(UsageError, match="job_id"):
            await queue.put(call(1), job_id="")
        with pytest.raises(UsageError, match="job_id"):
            await queue.put(call(1), job_id="x" * 201)
        with pytest.raises(UsageError, match="JSON"):
            await queue.put(object(), job_id="a")
    with pytest.raises(UsageError, match="stream"):
        RedisCallQueue(redis_url, stream="")


async def test_redis_unreachable_is_a_typed_error() -> None:
    """Nothing listening: RedisUnavailableError (a SippetError) naming the URL, no redis
    exception leaks."""
    url = f"redis://:secret@127.0.0.1:{_free_port()}/0"
    async with RedisCallQueue[dict[str, str]](url) as queue:
        with pytest.raises(RedisUnavailableError, match="unreachable") as caught:
            await queue.put(call(1), job_id="a")
    assert "secret" not in str(caught.value)
    assert isinstance(caught.value.__cause__, redis.exceptions.ConnectionError)


def test_the_client_imports_no_redis() -> None:
    """``import sippet_async`` (and its CallWorker) never loads redis."""
    code = "import sys, sippet_async; print('redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
