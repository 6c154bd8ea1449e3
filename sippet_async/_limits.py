"""Admission control: the concurrency cap, the shared pause gate and the rate limiter.

Every HTTP attempt (retries included) passes ``Limits.admit`` while holding one of the
client's concurrency slots, and every reply goes through ``Limits.observe``:

* **The pause gate** is one deadline shared by every task of a client. A 429 or a 503 with
  ``Retry-After`` (or ``RateLimit-Remaining: 0``) moves it forward; no request is sent
  until it has passed. A wait longer than ``retry_after_cap`` raises ``RateLimitError``.
* **The rate limiter** keeps every rolling window of one second (plus a small margin) at
  or under R requests, including the first second and the moment after a pause, while
  sustaining ~0.985 R. aiolimiter paces requests evenly with a small bucket (its default, a
  bucket of a whole second's quota, lets 2 R through in the first second); a log of recent
  send times makes the window bound exact whatever the timer jitter. The effective rate
  drops to 0.7 of itself on a 429 and climbs back by 5% of R per half second of success
  (AIMD).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final

from aiolimiter import AsyncLimiter

from sippet_async import _protocol as protocol
from sippet_async._errors import RateLimitError, UsageError
from sippet_async._hooks import Counters

__all__ = ["Limits", "PauseGate", "RateLimiter", "Slots"]

log: Final = logging.getLogger("sippet_async")

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

# Our send time and the server's arrival time differ by network and event-loop jitter;
# counting windows of 1.015 s keeps the server's 1 s windows within R while requests arrive
# up to 15 ms later than their neighbours (measured here: 10 ms was not always enough on a
# busy 2-core machine at 1,000/s), at 0.985 R.
DEFAULT_WINDOW_MARGIN: Final = 0.015
# The pacer may release this many seconds' worth of requests at once, so a timer that
# fires a millisecond late costs no throughput (the window log still bounds every window).
PACE_SLACK: Final = 0.01
DECREASE: Final = 0.7  # multiplicative decrease on a 429 / 503 with Retry-After
# Additive increase, as a fraction of R, per half second of replies without pushback (the
# first one a whole window after the decrease): back from 0.7 R to R in about 4 s, quick
# enough that a stray 429 costs little, slow enough not to oscillate against a real limit.
INCREASE_STEP: Final = 0.05
INCREASE_INTERVAL: Final = 0.5
MIN_FACTOR: Final = 0.05  # never below 5% of R: a transient storm must not stall a job
# A hint that leaves fewer than half the requests we would send before its reset slows us.
HINT_HEADROOM: Final = 0.5


class RateLimiter:
    """At most R requests in any rolling second, spread evenly, with an adaptive rate.

    ``acquire()`` before each HTTP attempt. Uses the running loop's clock, so a test can
    drive it with a loop whose clock it controls.
    """

    def __init__(self, per_second: float, *, margin: float = DEFAULT_WINDOW_MARGIN) -> None:
        if isinstance(per_second, bool) or not isinstance(per_second, int | float) \
                or not math.isfinite(per_second) or per_second <= 0:
            raise UsageError(f"rate_limit must be a positive number of requests per second, "
                             f"got {per_second!r}")
        self.per_second = float(per_second)
        # Below 1/s the window is the time one request takes: 0.5/s is 1 per 2 s.
        period = max(1.0, 1.0 / per_second)
        self._quota = max(1, math.floor(per_second * period + 1e-9))
        self._window = period + margin
        self._factor = 1.0
        self._limit = self._quota
        self._changed_at = -math.inf
        self._decreased_at = -math.inf
        self._sent: deque[float] = deque()
        self._lock = asyncio.Lock()
        self._pacer = self._new_pacer()

    @property
    def rate(self) -> float:
        """The current sustained rate, requests per second (lowered after throttling)."""
        return self._limit / self._window

    def _new_pacer(self) -> AsyncLimiter:
        rate = self._limit / self._window
        burst = min(self._limit, max(2, math.ceil(rate * PACE_SLACK)))
        return AsyncLimiter(burst, burst / rate)

    async def acquire(self) -> None:
        """Wait for this request's turn."""
        await self._pacer.acquire()
        async with self._lock:  # FIFO: one waiter at a time owns the window log
            loop = asyncio.get_running_loop()
            sent = self._sent
            while True:
                now = loop.time()
                horizon = now - self._window
                while sent and sent[0] <= horizon:
                    sent.popleft()
                if len(sent) < self._limit:
                    sent.append(now)
                    return
                await asyncio.sleep(sent[-self._limit] - horizon)

    def throttled(self) -> None:
        """The server pushed back: lower the rate to 0.7 of itself.

        Once per window: the replies of one burst all say the same thing.
        """
        now = asyncio.get_running_loop().time()
        if now - self._decreased_at >= self._window:
            self._decreased_at = now
            self._set_factor(max(MIN_FACTOR, self._factor * DECREASE), now)

    def succeeded(self) -> None:
        """A reply without pushback: climb back towards R, one step per interval."""
        if self._factor < 1.0:
            now = asyncio.get_running_loop().time()
            if now - self._changed_at >= INCREASE_INTERVAL \
                    and now - self._decreased_at >= self._window:
                self._set_factor(min(1.0, self._factor + INCREASE_STEP), now)

    def _set_factor(self, factor: float, now: float) -> None:
        self._factor = factor
        self._changed_at = now
        limit = max(1, math.floor(self._quota * factor + 1e-9))
        if limit != self._limit:
            self._limit = limit
            # Waiters already in the old pacer finish there; the window log bounds both.
            self._pacer = self._new_pacer()
            log.debug("rate limit now %.1f/s", self.rate)


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
                 clock: Clock = time.monotonic) -> None:
        self._sleep = sleep
        self._cap = cap
        self._counters = counters
        self._clock = clock
        self._until = 0.0  # 0.0: never paused (saves a clock read per request)

    def closed(self) -> bool:
        """True while a pause is running."""
        return self._until > 0.0 and self._clock() < self._until

    def pause(self, seconds: float, *, action: str, attempt: int, cause: str) -> None:
        """Hold every request back for ``seconds`` from now (extends, never shortens)."""
        now = self._clock()
        until = now + seconds
        if until <= self._until:
            return
        if self._until <= now:
            self._counters.pauses += 1
            log.info("%s: attempt %d got %s; pausing every request for %.3fs",
                     action, attempt, cause, seconds)
        else:
            log.debug("%s: attempt %d got %s; pause extended to %.3fs", action, attempt,
                      cause, seconds)
        self._until = until

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


class Limits:
    """A client's admission control: concurrency slots, the pause gate, the rate limiter."""

    def __init__(self, *, max_concurrency: int, rate_limit: float | None,
                 retry_after_cap: float, sleep: Sleep, counters: Counters) -> None:
        # Every attempt holds a slot from the gate check to its reply: a request queued
        # for a connection must not pass the pause gate before the pause begins.
        self.slots = Slots(max_concurrency)
        self.gate = PauseGate(sleep=sleep, cap=retry_after_cap, counters=counters)
        self.limiter = RateLimiter(rate_limit) if rate_limit is not None else None
        self._cap = retry_after_cap
        self._counters = counters

    def gated(self) -> bool:
        """Whether a request must pass ``admit`` (a rate limit is set or a pause is on);
        when False, ``admit`` would return at once, so the caller may skip it."""
        return self.limiter is not None or self.gate.closed()

    async def admit(self, action: str) -> None:
        """Wait for the pause gate, then for a rate token (call while holding a slot)."""
        gate, limiter = self.gate, self.limiter
        while True:
            honoured = await gate.wait(action) if gate.closed() else gate.until
            if limiter is None:
                return
            await limiter.acquire()
            # A new pause may have begun while we queued for the token: wait for it too.
            if gate.until <= honoured or not gate.closed():
                return

    def observe(self, action: str, attempt: int, response: protocol.HttpResponse) -> None:
        """Learn from a reply: Retry-After pauses, rate-limit hints, AIMD (§12.1)."""
        status = response.status
        if status == 429 or status == 503:
            self._throttled(action, attempt, status, response)
            return
        limiter = self.limiter
        if limiter is not None:
            limiter.succeeded()
        hint = protocol.parse_rate_limit(response.headers)
        if hint is not None:
            self._hinted(action, attempt, hint)

    def _throttled(self, action: str, attempt: int, status: int,
                   response: protocol.HttpResponse) -> None:
        if status == 429:
            self._counters.rate_limited += 1
        retry_after = protocol.parse_retry_after(protocol.header(response.headers,
                                                                 "Retry-After"))
        if retry_after is not None and retry_after > 0:
            self.gate.pause(retry_after, action=action, attempt=attempt,
                            cause=f"HTTP {status} with Retry-After")
        if self.limiter is not None and (status == 429 or retry_after is not None):
            self.limiter.throttled()

    def _hinted(self, action: str, attempt: int, hint: protocol.RateLimitHint) -> None:
        """Slow down before the server says 429 (§12.1 hints; malformed ones never get here)."""
        if hint.remaining == 0:
            if 0 < hint.reset <= self._cap:
                self.gate.pause(hint.reset, action=action, attempt=attempt,
                                cause="RateLimit-Remaining: 0")
            return
        limiter = self.limiter
        if limiter is not None and hint.remaining < limiter.rate * hint.reset * HINT_HEADROOM:
            limiter.throttled()
