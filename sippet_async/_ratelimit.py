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
send times makes the window bound exact whatever the timer jitter. The rate adapts to the
server's replies by the pure rules of ``_adaptive`` (learn the quota from a cluster of
429s, cut only on clustered 503s, recover fast, probe slowly); after any change of rate
the sends stay evenly paced at the new one.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from typing import Final

from aiolimiter import AsyncLimiter

from sippet_async import _adaptive as adaptive
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
# How often (seconds) acquire re-reads the adaptive rate: its curves move slowly, and a
# new pacer per request would cost more than it paces.
REFRESH: Final = 0.05


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
        self._period = max(1.0, 1.0 / per_second)
        self._window = self._period + margin
        self._tally = adaptive.Tally(adaptive.start(per_second))
        self._limit = self._quota(per_second)
        self._next_refresh = -math.inf
        self._sent: deque[float] = deque()
        self._lock = asyncio.Lock()
        self._pacer = self._new_pacer()

    @classmethod
    def learned(cls, state: adaptive.Adaptive, *,
                margin: float = DEFAULT_WINDOW_MARGIN) -> RateLimit:
        """A limiter that starts from ``state`` (``rate_limit=None``: a rate learned from a
        429, with no ceiling)."""
        limiter = cls(max(adaptive.rate_at(state, state.epoch), 1e-3), margin=margin)
        limiter.state = state
        return limiter

    @property
    def state(self) -> adaptive.Adaptive:
        """The adaptive state (``_adaptive.Adaptive``: learned rate, last good rate, the
        epoch of the last cut, a second of counts); plain numbers, so a limiter shared by
        many processes can keep them in a shared store."""
        return self._tally.state

    @state.setter
    def state(self, state: adaptive.Adaptive) -> None:
        self._tally.state = state

    def __repr__(self) -> str:
        return f"RateLimit({self.per_second:g})"

    @property
    def rate(self) -> float:
        """The current sustained rate, requests per second (adapted to the server's replies)."""
        return self._limit / self._window

    def _quota(self, rate: float) -> int:
        """Requests per window at ``rate`` (requests per second)."""
        return max(1, math.floor(min(rate * self._period, 1e9) + 1e-9))

    def _new_pacer(self) -> AsyncLimiter:
        rate = self._limit / self._window
        burst = min(self._limit, max(2, math.ceil(rate * PACE_SLACK)))
        return AsyncLimiter(burst, burst / rate)

    async def acquire(self) -> None:
        """Wait for this request's turn."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now >= self._next_refresh:
            self._refresh(now)
        await self._pacer.acquire()
        async with self._lock:  # FIFO: one waiter at a time owns the window log
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
        """Learn from a 429 / 503 or from hints (docs/guides/retries.md, "Adapting")."""
        now = asyncio.get_running_loop().time()
        self._changed(adaptive.pushed_back(self.state, now, pushback.status,
                                           pushback.remaining, pushback.reset), now)

    def throttled(self) -> None:
        """Take the successes of the last second as the server's quota, now (a 429)."""
        now = asyncio.get_running_loop().time()
        self._changed(adaptive.learn(self.state, now), now)

    def succeeded(self) -> None:
        """A reply without pushback: counted, for the quota a 429 would teach."""
        self._tally.succeeded(asyncio.get_running_loop().time())

    async def aclose(self) -> None:
        """Nothing to release: the built-in limiter holds no resources."""

    def _changed(self, state: adaptive.Adaptive, now: float) -> None:
        cut = state.epoch != self.state.epoch
        self.state = state
        if cut:
            self._refresh(now)

    def _refresh(self, now: float) -> None:
        """Pace at the adaptive rate of ``now``."""
        self._next_refresh = now + REFRESH
        limit = self._quota(adaptive.rate_at(self.state, now))
        if limit == self._limit:
            return
        if limit < self._limit and len(self._sent) >= limit:
            # Slower from now on, evenly: the log says the last window was sent at the new
            # rate, so the next send waits one interval, not until the old sends age out
            # (which went silent for 0.2-0.3 s, then burst at the old rate).
            step = self._window / limit
            self._sent.clear()  # in place: a waiter holding the lock reads the same deque
            self._sent.extend(now - step * k for k in range(limit - 1, 0, -1))
        self._limit = limit
        # Waiters already in the old pacer finish there; the window log bounds both.
        self._pacer = self._new_pacer()
        log.debug("rate limit now %.1f/s", self.rate)
