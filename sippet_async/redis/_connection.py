"""Reaching Redis: the ``RedisUnavailableError`` every Redis part raises, and URLs shown
without their password."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
import redis.exceptions

from sippet_async._errors import TransportError

__all__ = ["DEFAULT_REDIS_TIMEOUT", "REDIS_FAILURES", "RedisUnavailableError", "connect",
           "describe", "shown_url"]

# What "Redis did not answer" looks like from redis-py (a refused or lost connection, a
# timeout, a server still loading its data after a restart); any other Redis error (a
# script error, a wrong type) is a bug and propagates as it is.
REDIS_FAILURES: Final = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                         redis.exceptions.BusyLoadingError, OSError)
# Seconds to connect to Redis and to wait for one reply: a lost Redis is reported (or the
# fallback taken) within a second, while loopback and LAN replies take well under 1 ms.
DEFAULT_REDIS_TIMEOUT: Final = 1.0


class RedisUnavailableError(TransportError):
    """Redis did not answer (refused, lost, timed out). ``url`` names the server, password
    removed.

    From the shared limit: it cannot grant a request, so the request was not sent (``sent``
    is False) and the client's retry policy retries it like a refused connection. From the
    call queue or its outcome record: nothing about a job was decided (a job being sent
    stays claimed in its record; a job not yet taken stays in the queue).
    """

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message, sent=False)
        self.url = url


def shown_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (the user name is kept)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + ("" if parts.port is None else f":{parts.port}")
    return urlunsplit(parts._replace(netloc=netloc))


def describe(client: aioredis.Redis) -> str:
    """The address of a client we were given, for messages (it holds no password)."""
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    return f"redis://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}" \
           f"/{kwargs.get('db', 0)}"


def connect(url_or_client: str | aioredis.Redis, *,
            timeout: float) -> tuple[aioredis.Redis, str, bool]:
    """A redis-py asyncio client, the URL to show, and whether we own (and close) it."""
    if isinstance(url_or_client, str):
        client = aioredis.Redis.from_url(url_or_client, socket_timeout=timeout,
                                         socket_connect_timeout=timeout)
        return client, shown_url(url_or_client), True
    return url_or_client, describe(url_or_client), False
