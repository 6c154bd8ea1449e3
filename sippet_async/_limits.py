"""Admission control: the concurrency cap, the shared pause gate and the rate limiter.

Every HTTP attempt (retries included) passes ``Limits.admit`` while holding one of the
client's concurrency slots, and every reply goes through ``Limits.observe``:

* **The pause gate** is one deadline shared by every task of a client. A 429 or a 503 with
  ``Retry-After`` (or ``RateLimit-Remaining: 0``) moves it forward; no request is sent
  until it has passed. A wait longer than ``retry_after_cap`` raises ``RateLimitError``.
* **The rate limiter** (any ``RateLimiter``; ``RateLimit`` in ``_ratelimit`` is the
  built-in one) gives a token per attempt and hears what each reply said about the
  server's limit. It only paces: the gate and the slots stay here whatever is plugged in.
* **With ``rate_limit=None``** the successes are counted (``_adaptive``), and the first
  429 once the job is a second old creates the built-in limiter at the rate the server
  accepted in the last second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final, cast

from sippet_async import _adaptive as adaptive
from sippet_async import _protocol as protocol
from sippet_async._errors import RateLimitError
from sippet_async._hooks import Counters, PauseHook
from sippet_async._limiter import Pushback, RateLimiter, SharesPauses, check_rate, is_limiter
from sippet_async._ratelimit import RateLimit

__all__ = ["Limits", "PauseGate", "Slots"]

log: Final = logging.getLogger("sippet_async")

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


class Slots:
    """The concurrency cap: at most ``n`` holders, waiters served first come, first served.

    ``asyncio.Semaphore`` builds a coroutine and a generator on every acquire, even when a
    slot is free (3k instructions per request by callgrind; with it, ``client.run`` at
    concurrency 256 fell to 0.89x the bare aiohttp loop in benchmarks/bench_overhead.py,
    against 0.93x to 0.99x with this). ``take()`` is synchronous and takes a free slot at
    once; only a caller that must wait awaits.

    Example:
        if not slots.take():
            await slots.wait()
        try:
            ...
        finally:
            slots.release()
    """

    __slots__ = ("_free", "_waiters")

    def __init__(self, n: int) -> None:
        self._free = n
        # Invariant: while anyone waits, no slot is free (release hands it over directly).
        self._waiters: deque[asyncio.Future[None]] = deque()

    def take(self) -> bool:
        """Take a free slot now; False when none is free or others are waiting first."""
        if self._free and not self._waiters:
            self._free -= 1
            return True
        return False

    async def wait(self) -> None:
        """Wait in line for a slot (after ``take()`` said False); the slot is held on return."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot just as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):  # or already dropped by release()
                    self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give a slot back: to the first waiter still waiting, else to the pool."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():  # a cancelled waiter leaves a done future behind
                waiter.set_result(None)
                return
        self._free += 1

    @property
    def free(self) -> int:
        """Slots nobody holds."""
        return self._free


class PauseGate:
    """One pause shared by every request of a client: nothing is sent until it passes."""

    def __init__(self, *, sleep: Sleep, cap: float, counters: Counters,
                 clock: Clock = time.monotonic, on_pause: PauseHook | None = None) -> None:
        self._sleep = sleep
        self._cap = cap
        self._counters = counters
        self._clock = clock
        self._on_pause = on_pause
        self._until = 0.0  # 0.0: never paused (saves a clock read per request)

    def closed(self) -> bool:
        """True while a pause is running."""
        return self._until > 0.0 and self._clock() < self._until

    def pause(self, seconds: float, *, action: str, attempt: int, cause: str) -> None:
        """Hold every request back for ``seconds`` from now (extends, never shortens).

        ``cause`` is ``"429"`` or ``"503"`` (a reply with ``Retry-After``) or ``"hint"``
        (``RateLimit-Remaining: 0``); the pause hook hears of every pause that begins or
        grows, ``counters.pauses`` counts those that begin.
        """
        now = self._clock()
        until = now + seconds
        if until <= self._until:
            return
        if self._until <= now:
            self._counters.pauses += 1
            log.info("%s: attempt %d got %s; pausing every request for %.3fs",
                     action, attempt, _PAUSE_CAUSES[cause], seconds)
        else:
            log.debug("%s: attempt %d got %s; pause extended to %.3fs", action, attempt,
                      _PAUSE_CAUSES[cause], seconds)
        self._until = until
        if self._on_pause is not None:
            self._on_pause(action, attempt, cause, seconds)

    @property
    def until(self) -> float:
        """When the current (or last) pause ends, on the gate's clock."""
        return self._until

    async def wait(self, action: str) -> float:
        """Return once the pause has passed; the result is the end of the pause honoured.

        Raises:
            RateLimitError: the pause lasts longer than ``retry_after_cap``.
        """
        while True:
            until = self._until
            remaining = until - self._clock()
            if remaining <= 0:
                return until
            if remaining > self._cap:
                raise RateLimitError(
                    f"{action}: the server asked to wait {remaining:.3g}s, more than "
                    f"retry_after_cap ({self._cap:g}s); not sent", retry_after=remaining)
            await self._sleep(remaining)
            if self._until <= until:  # not extended while we slept
                return until


# What began a pause, as the log says it.
_PAUSE_CAUSES: Final = {
    "429": "HTTP 429 with Retry-After",
    "503": "HTTP 503 with Retry-After",
    "hint": "RateLimit-Remaining: 0",
    "shared": "a pause shared by its rate limiter (another process's Retry-After)",
}
# A shared pause that ends within this much of the client's own is the same pause (its own
# 429 echoed back, or the other 429s of one burst): it does not grow the gate.
SHARED_PAUSE_SLACK: Final = 0.05


class Limits:
    """A client's admission control: concurrency slots, the pause gate, the rate limiter."""

    def __init__(self, *, max_concurrency: int, rate_limit: float | RateLimiter | None,
                 retry_after_cap: float, sleep: Sleep, counters: Counters,
                 on_pause: PauseHook | None = None) -> None:
        """Build the slots, the gate and the limiter of one client.

        Args:
            rate_limit: requests per second (the built-in ``RateLimit``), any
                ``RateLimiter``, or None for no limiter.
            on_pause: called with ``(action, attempt, cause, wait)`` when the shared
                pause begins or grows.

        Raises:
            UsageError: ``rate_limit`` is neither a positive number, a ``RateLimiter``
                instance nor None.
        """
        # Every attempt holds a slot from the gate check to its reply: a request queued
        # for a connection must not pass the pause gate before the pause begins.
        self.slots = Slots(max_concurrency)
        self.gate = PauseGate(sleep=sleep, cap=retry_after_cap, counters=counters,
                              on_pause=on_pause)
        self.limiter = _limiter(rate_limit)
        # rate_limit=None: the counts a first 429 learns the server's quota from.
        self._learning = adaptive.Tally(adaptive.start(math.inf)) \
            if self.limiter is None else None
        self._cap = retry_after_cap
        self._counters = counters
        if isinstance(self.limiter, SharesPauses):
            self.limiter.attach_pause(self._shared_pause)

    async def admit(self, action: str) -> None:
        """Wait for the pause gate, then for a rate token (call while holding a slot)."""
        gate = self.gate
        while True:
            honoured = await gate.wait(action) if gate.closed() else gate.until
            limiter = self.limiter  # rate_limit=None: created by the first 429
            if limiter is None:
                return
            await limiter.acquire()
            # A new pause may have begun while we queued for the token: wait for it too.
            if gate.until <= honoured or not gate.closed():
                return

    def observe(self, action: str, attempt: int, response: protocol.HttpResponse) -> None:
        """Learn from a reply: Retry-After pauses, rate-limit hints, the limiter (§12.1)."""
        status = response.status
        if status == 429 or status == 503:
            self._throttled(action, attempt, status, response)
            return
        limiter = self.limiter
        if limiter is not None:
            limiter.succeeded()
        elif self._learning is not None:
            self._learning.succeeded(asyncio.get_running_loop().time())
        hint = protocol.parse_rate_limit(response.headers)
        if hint is not None:
            self._hinted(action, attempt, status, hint)

    async def aclose(self) -> None:
        """Close the rate limiter (the client is closing)."""
        if self.limiter is not None:
            await self.limiter.aclose()

    def _shared_pause(self, seconds: float) -> None:
        """The limiter heard of a pause from elsewhere: this client's gate closes too."""
        gate = self.gate
        if gate.closed() and gate.until - time.monotonic() >= seconds - SHARED_PAUSE_SLACK:
            return  # the gate's clock is time.monotonic (built above with its default)
        gate.pause(seconds, action="(shared)", attempt=0, cause="shared")

    def _throttled(self, action: str, attempt: int, status: int,
                   response: protocol.HttpResponse) -> None:
        if status == 429:
            self._counters.rate_limited += 1
        headers = response.headers
        retry_after = protocol.parse_retry_after(protocol.header(headers, "Retry-After"))
        if retry_after is not None and retry_after > 0:
            self.gate.pause(retry_after, action=action, attempt=attempt, cause=str(status))
        if status == 429 and self.limiter is None:
            self._learn()
        # A 503 without Retry-After is a server error, not pushback.
        if self.limiter is not None and (status == 429 or retry_after is not None):
            hint = protocol.parse_rate_limit(headers)
            self.limiter.pushback(Pushback(
                status=status, retry_after=retry_after,
                remaining=None if hint is None else hint.remaining,
                reset=None if hint is None else hint.reset,
                limit=None if hint is None else hint.limit))

    def _learn(self) -> None:
        """``rate_limit=None`` and a 429: a limiter at the rate the server accepted in the
        last second (none while the job is younger than a second or nothing was accepted:
        the pause alone acts)."""
        if self._learning is None:
            return
        state = self._learning.state
        now = asyncio.get_running_loop().time()
        learned = adaptive.learn(state, now)
        if learned.epoch != now:  # too young a job, or nothing accepted: no limit learned
            return
        self.limiter = RateLimit.learned(learned)
        self._learning = None
        log.info("rate limit learned from a 429: %.1f/s", self.limiter.rate)

    def _hinted(self, action: str, attempt: int, status: int,
                hint: protocol.RateLimitHint) -> None:
        """An exhausted window pauses every request; the limiter judges the rest
        (§12.1 hints; malformed ones never get here)."""
        if hint.remaining == 0 and 0 < hint.reset <= self._cap:
            self.gate.pause(hint.reset, action=action, attempt=attempt, cause="hint")
        if self.limiter is not None:
            self.limiter.pushback(Pushback(status=status, remaining=hint.remaining,
                                           reset=hint.reset, limit=hint.limit))


def _limiter(rate_limit: float | RateLimiter | None) -> RateLimiter | None:
    """``rate_limit=`` as a limiter: a number builds the built-in one."""
    if rate_limit is None:
        return None
    # A class has the methods too; only an instance can be called.
    if is_limiter(rate_limit):
        return cast(RateLimiter, rate_limit)
    return RateLimit(check_rate("rate_limit", rate_limit))
