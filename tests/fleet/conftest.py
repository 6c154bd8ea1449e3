"""Fixtures for the fleet's tests: a real, throwaway ``redis-server`` (never a mock).

A missing ``redis-server`` fails these tests with ``RedisServerError``; they never skip.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from sippet_async.testing import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One ``redis-server`` for the session, on a free port of 127.0.0.1."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The shared server's URL, emptied (FLUSHALL) before each test; restarted if a test
    stopped it."""
    redis_server.start()
    with redis.Redis.from_url(redis_server.url) as connection:
        connection.flushall()
    return redis_server.url


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A ``redis-server`` of this test's own, for tests that kill or restart it."""
    with RedisServer() as server:
        yield server
