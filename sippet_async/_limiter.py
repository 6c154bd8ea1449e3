"""The rate limiter seam, with no I/O: the ``RateLimiter`` protocol and the ``Pushback`` it
is told about.

Here, in the lowest layer, so the configuration can hold any limiter (``client.config``
shows the whole policy); the built-in ``RateLimit`` is in ``_ratelimit``. A limiter shared
by many processes (``sippet_async.redis.RedisRateLimit``) implements the same protocol, and
``SharesPauses`` to close the clients' pause gates when another process is told to wait.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from sippet_async._errors import UsageError

__all__ = ["Pushback", "RateLimiter", "SharesPauses", "check_rate", "is_limiter"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Pushback:
    """What one reply said about the server's rate limit (docs/protocol.md §12.1).

    Given to ``RateLimiter.pushback``. Stable: fields may be added (with defaults), none
    removed or renamed.

    Attributes:
        status: the reply's HTTP status: 429, or 503 (only with ``Retry-After``), or any
            other status whose reply carried ``RateLimit-*`` hints.
        retry_after: the ``Retry-After`` of a 429 / 503 in seconds (None: absent).
        remaining: requests left in the server's window, from the hints (None: no hints).
        reset: seconds until the server's window resets, from the hints.
        limit: the window's quota, when the server sends it.
    """

    status: int
    retry_after: float | None = None
    remaining: int | None = None
    reset: float | None = None
    limit: int | None = None

    @property
    def throttled(self) -> bool:
        """True for a 429 or a 503: the server refused this request; False for hints only."""
        return self.status == 429 or self.status == 503


@runtime_checkable
class RateLimiter(Protocol):
    """A client-side rate limiter; pass one as ``SippetClient(rate_limit=...)``.

    The client calls ``acquire()`` before every HTTP attempt, retries included, from many
    tasks at once (an attempt whose deadline passes is cancelled while it waits, so
    ``acquire`` must tolerate cancellation); after each reply, ``succeeded()`` or
    ``pushback()``, or both for a reply that carries hints; ``aclose()`` once, from the
    client's own ``aclose()``. Nothing is called from another thread. An exception raised
    by any method is not swallowed: it fails the call. ``RateLimit`` is the built-in one.

    The shared pause of a ``Retry-After`` and the concurrency cap stay in the client
    whatever limiter is plugged in, so a limiter only paces requests (one that also
    implements ``SharesPauses`` may close the client's pause gate).

    ``acquire`` and ``aclose`` are coroutines: implement them with ``async def`` (they are
    declared as returning awaitables only so this module holds no async code).

    A limiter shared by several clients is closed by each of them: make ``aclose`` count
    its users, or do nothing in it and close the shared resource yourself.

    Example:
        class Unlimited:
            async def acquire(self) -> None: ...
            def succeeded(self) -> None: ...
            def pushback(self, pushback: Pushback) -> None: log.warning("%s", pushback)
            async def aclose(self) -> None: ...
    """

    def acquire(self) -> Awaitable[None]:
        """Return when this attempt may be sent."""

    def succeeded(self) -> None:
        """A reply arrived that was not a 429 or a 503."""

    def pushback(self, pushback: Pushback) -> None:
        """The server spoke about its limit: a 429, a 503 with ``Retry-After``, or
        ``RateLimit-*`` hints (which may say there is plenty left)."""

    def aclose(self) -> Awaitable[None]:
        """The client that used this limiter is closing."""


@runtime_checkable
class SharesPauses(Protocol):
    """Optional, beside ``RateLimiter``: a limiter that hears of pauses from elsewhere (a
    limiter shared by processes, told of another one's 429) implements it.

    The client calls ``attach_pause`` once, when it is built, with a function that pauses
    its own gate for the given seconds (as its own ``Retry-After`` would: its calls wait,
    or raise ``RateLimitError`` past ``retry_after_cap``). A limiter without the method is
    never told anything of the kind.
    """

    def attach_pause(self, pause: Callable[[float], None]) -> None:
        """Call ``pause(seconds)`` whenever a pause heard from elsewhere begins."""


def check_rate(name: str, value: object) -> float:
    """``value`` as a positive, finite number of requests per second.

    Raises:
        UsageError: naming ``name``, for anything else (bools included).
    """
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or value <= 0:
        raise UsageError(f"{name} must be a positive number of requests per second, "
                         f"got {value!r}")
    return float(value)


def is_limiter(value: object) -> bool:
    """Whether ``value`` is a limiter object (an instance implementing ``RateLimiter``)."""
    return isinstance(value, RateLimiter) and not isinstance(value, type)
