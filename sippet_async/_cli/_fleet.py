"""What ``sippet enqueue`` and ``sippet worker`` share: the [redis] extra, its options."""

from __future__ import annotations

import argparse
import types
from typing import Any, Final

from sippet_async import UsageError

__all__ = ["ACTION_KEY", "add_redis_options", "redis_parts", "stream_action"]

ACTION_KEY: Final = "{stream}:action"  # the action ``enqueue`` queued the stream's jobs for


def redis_parts() -> types.ModuleType:
    """``sippet_async.redis``, or a usage error naming the extra to install."""
    try:
        import sippet_async.redis as parts
    except ImportError as exc:
        raise UsageError(
            'this command needs the [redis] extra: pip install "sippet_async[redis]"'
        ) from exc
    return parts


async def stream_action(url: str, stream: str, action: str | None) -> str | None:
    """The action the stream's jobs are for; ``action`` becomes it if none was set.

    Raises:
        UsageError: the stream was filled for another action.
    """
    import redis.asyncio as aioredis

    from sippet_async.redis._connect import translated

    key = ACTION_KEY.format(stream=stream)
    async with translated(url), aioredis.Redis.from_url(url) as connection:
        if action is not None:
            await connection.set(key, action, nx=True)
        found: Any = await connection.get(key)
    held = None if found is None else found.decode()
    if action is not None and held != action:
        raise UsageError(f"stream {stream!r} holds {held} jobs, not {action}: use another "
                         "--stream")
    return held


def add_redis_options(parser: argparse.ArgumentParser) -> None:
    """--redis, --stream and --group."""
    parser.add_argument("--redis", required=True, metavar="URL",
                        help="e.g. redis://127.0.0.1:6379/0")
    parser.add_argument("--stream", default="sippet:calls", metavar="S",
                        help="the queue's stream key (default sippet:calls)")
