"""The built-in rate limiter, ``RateLimit``: exact windows, even pacing, an adaptive rate.

The engine takes a rate token before every HTTP attempt (retries pay too) and tells the
limiter what each reply said: ``succeeded()`` for a reply that was not a 429 or 503, and
``pushback(Pushback(...))`` when the server spoke about its limit (a 429, a 503 with
``Retry-After``, or ``RateLimit-*`` hints on any reply). The shared pause of a
``Retry-After`` and the concurrency cap are not the limiter's business: they stay in
``Limits`` whatever limiter is plugged in.

The built-in ``RateLimit`` keeps every rolling window of one second (plus a small margin)
at or under R requests, including the first second and the moment after a pause, while
sustaining ~0.985 R. aiolimiter paces requests evenly with a small bucket (its default, a
bucket of a whole second's quota, lets 2 R through in the first second); a log of recent
send times makes the window bound exact whatever the timer jitter. The effective rate
drops to 0.7 of itself on a 429 and climbs back by 5% of R per half second of success
(AIMD).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from typing import Final

from aiolimiter import AsyncLimiter

from sippet_async._limiter import Pushback, check_rate

__all__ = ["RateLimit"]

log: Final = logging.getLogger("sippet_async")

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


class RateLimit:
    """At most ``per_second`` requests in any rolling second, spread evenly, with an
    adaptive rate: the built-in ``RateLimiter`` (``SippetClient(rate_limit=10)`` builds
    ``RateLimit(10)``).

    Uses the running loop's clock, so a test can drive it with a loop whose clock it
    controls.

    Raises:
        UsageError: ``per_second`` is not a positive, finite number.

    Example:
        limiter = RateLimit(10)        # the same as rate_limit=10
        async with SippetClient(rate_limit=limiter) as client: ...
    """

    def __init__(self, per_second: float, *, margin: float = DEFAULT_WINDOW_MARGIN) -> None:
        per_second = check_rate("per_second", per_second)
        self.per_second = per_second
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

    def __repr__(self) -> str:
        return f"RateLimit({self.per_second:g})"

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

    def pushback(self, pushback: Pushback) -> None:
        """Slow down after a 429 / 503, or on hints that leave too little for the reset
        (an exhausted window is the client's shared pause, not a slow-down)."""
        if pushback.throttled:
            self.throttled()
            return
        remaining, reset = pushback.remaining, pushback.reset
        if remaining and reset is not None \
                and remaining < self.rate * reset * HINT_HEADROOM:
            self.throttled()

    def throttled(self) -> None:
        """Lower the rate to 0.7 of itself.

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

    async def aclose(self) -> None:
        """Nothing to release: the built-in limiter holds no resources."""

    def _set_factor(self, factor: float, now: float) -> None:
        self._factor = factor
        self._changed_at = now
        limit = max(1, math.floor(self._quota * factor + 1e-9))
        if limit != self._limit:
            self._limit = limit
            # Waiters already in the old pacer finish there; the window log bounds both.
            self._pacer = self._new_pacer()
            log.debug("rate limit now %.1f/s", self.rate)
