"""The adaptive rate, with no I/O: how fast the replies say the client should send.

One small state object, ``Adaptive``, and pure transitions that take the time as a number
(seconds on any monotonic clock). The built-in limiter (``_ratelimit.RateLimit``) keeps one
and asks ``rate_at`` how fast to send; a limiter shared by many processes can keep the same
few numbers in a shared store and run the same functions.

The rules (issue 12):

* **A 429 teaches the quota.** When 429s cluster (at least ``LIMITED_MIN`` in the last
  second, and ``LIMITED_SHARE`` of the replies), the successes of the last second are what
  the server accepts: the rate is set there in one step (never above the current rate,
  never below the floor), at most once per window. A stray 429 changes nothing; its
  ``Retry-After`` pause is the gate's business.
* **A stray 503 is not overload.** Only a cluster of 503s with ``Retry-After``
  (``BUSY_MIN`` and ``BUSY_SHARE``) cuts the rate, to ``BETA`` of what the server accepted,
  and remembers that as the last good rate.
* **Hints** (``RateLimit-Remaining`` too low for the reset) cut to ``BETA`` of the rate.
* **Recover fast, probe carefully** (CUBIC, as TCP and botocore's adaptive mode): after a
  cut the rate climbs back to the last good rate along a concave cubic in ``RECOVER``
  seconds, then probes above it along a convex one, slowly at first (+1.5% after 10 s)
  and faster the longer it holds (+12% after 20 s), up to the ceiling.

The success and pushback counts of the last second are estimated from two one-second
buckets (the previous bucket weighted by how much of it still overlaps the last second):
exact at a steady rate, three numbers per count however fast the client sends.
"""

from __future__ import annotations

import math
from typing import Final

import msgspec

__all__ = ["Adaptive", "busy", "hinted", "learn", "limited", "rate_at", "start", "succeeded"]

WINDOW: Final = 1.0  # seconds: the server's window, and the span of the counts
# A cut to the quota the server showed: two 429s in a second, one per ~200 replies, is a
# limit being met (the shared pause stops the rest of a burst); one per 1,000 is the noise
# of a shared edge (`sippet demo`'s mix), whose chance clusters cut rarely and little.
LIMITED_MIN: Final = 2
LIMITED_SHARE: Final = 0.005
# Overload shows as many 503s at once; 0.2% of replies is a stray (a deploy, one bad node).
BUSY_MIN: Final = 3
BUSY_SHARE: Final = 0.05
BETA: Final = 0.7  # the cut after overload or a hint (CUBIC's and botocore's beta)
RECOVER: Final = 2.0  # seconds from a cut back to the last good rate (96% of it in 1 s)
# The probe above the last good rate: good x (1 + PROBE x t^3), t seconds after RECOVER.
# A quota learned exactly is met again once the probe passes the limiter's own 1.5% window
# margin: after ~10 s, so one failed probe per ~12 s.
PROBE: Final = 1.5e-5
MIN_FACTOR: Final = 0.05  # never below 5% of the first rate: a storm must not stall a job
# A hint that leaves fewer than half the requests we would send before its reset slows us.
HINT_HEADROOM: Final = 0.5
MAX_PAUSED: Final = 0.9  # seconds: the successes of 0.1 s still say something


class Adaptive(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The adaptive state of one limiter: rates in requests per second, times in seconds.

    Attributes:
        ceiling: the configured rate (``inf``: none, a rate learned from a 429).
        floor: the rate is never set below this.
        good: the last rate the server accepted (CUBIC's W_max).
        cut: the rate set by the last cut.
        epoch: when the last cut happened (``-inf``: never); recovery and probing count
            from it.
        since: start of the current one-second bucket of counts.
        ok, limited, busy: successes, 429s and 503s with ``Retry-After`` in this bucket;
            the ``_prev`` fields, in the one before.
        paused: seconds of ``Retry-After`` pauses begun in this bucket (``paused_prev``:
            the one before); ``pause_until``: when the last one ends.
    """

    ceiling: float
    floor: float
    good: float
    cut: float
    epoch: float = -math.inf
    since: float = -math.inf
    ok: int = 0
    ok_prev: int = 0
    limited: int = 0
    limited_prev: int = 0
    busy: int = 0
    busy_prev: int = 0
    paused: float = 0.0
    paused_prev: float = 0.0
    pause_until: float = -math.inf


_replace: Final = msgspec.structs.replace


def start(ceiling: float, *, floor: float | None = None) -> Adaptive:
    """The state of a limiter configured at ``ceiling`` requests per second (``inf``: none)."""
    if floor is None:
        floor = ceiling * MIN_FACTOR if math.isfinite(ceiling) else 0.0
    return Adaptive(ceiling=ceiling, floor=floor, good=ceiling, cut=ceiling)


def rate_at(state: Adaptive, now: float) -> float:
    """The rate to send at, at ``now``: the recovery and probe curves after the last cut."""
    t = now - state.epoch
    good = state.good
    if t < RECOVER:
        x = t / RECOVER - 1.0  # -1 at the cut, 0 once recovered
        rate = good + (good - state.cut) * x * x * x
    else:
        t -= RECOVER
        rate = good * (1.0 + PROBE * t * t * t) if t < 1e6 else math.inf
    return min(state.ceiling, rate)


def accepted(state: Adaptive, now: float) -> float:
    """Successes per second over the part of the last second not paused by a
    ``Retry-After`` (an estimate from the two buckets): a pause the server asked for
    lowers the count, not the server's quota."""
    state = _rolled(state, now)
    ok = _last_second(state, now, state.ok, state.ok_prev)
    paused = _last_second(state, now, state.paused, state.paused_prev) \
        - max(0.0, state.pause_until - now)  # the part still to come
    return ok / (WINDOW - min(max(paused, 0.0), MAX_PAUSED))


def succeeded(state: Adaptive, now: float) -> Adaptive:
    """A reply that was not a 429 or a 503."""
    if now - state.since >= WINDOW:
        state = _rolled(state, now)
    return _replace(state, ok=state.ok + 1)


def limited(state: Adaptive, now: float, retry_after: float | None = None) -> Adaptive:
    """A 429 (and its pause): counted; when 429s cluster, the rate becomes what the server
    accepted."""
    state = _rolled(state, now)
    state = _replace(state, limited=state.limited + 1)
    if now - state.epoch >= WINDOW:  # the replies of one burst all say the same: one cut
        n = _last_second(state, now, state.limited, state.limited_prev)
        if n >= LIMITED_MIN and n >= LIMITED_SHARE * _replies(state, now):
            state = learn(state, now)
    return _paused(state, now, retry_after)


def learn(state: Adaptive, now: float) -> Adaptive:
    """Set the rate to the successes of the last second, within [floor, current rate]."""
    rate = min(rate_at(state, now), max(state.floor, accepted(state, now)))
    # No ceiling (rate_limit=None): the floor is set by the first rate learned.
    floor = state.floor or MIN_FACTOR * rate
    return _replace(_rolled(state, now), good=rate, cut=rate, epoch=now, floor=floor)


def busy(state: Adaptive, now: float, retry_after: float | None = None) -> Adaptive:
    """A 503 with ``Retry-After`` (and its pause): counted; when they cluster, cut to
    ``BETA`` of what the server accepted, and return to that quickly."""
    state = _rolled(state, now)
    state = _replace(state, busy=state.busy + 1)
    if now - state.epoch >= WINDOW:
        n = _last_second(state, now, state.busy, state.busy_prev)
        if n >= BUSY_MIN and n >= BUSY_SHARE * _replies(state, now):
            good = min(rate_at(state, now), max(state.floor, accepted(state, now)))
            state = _replace(state, good=good, cut=max(state.floor, BETA * good), epoch=now)
    return _paused(state, now, retry_after)


def hinted(state: Adaptive, now: float, remaining: int, reset: float) -> Adaptive:
    """``RateLimit-*`` hints: fewer requests left than half what we would send before the
    reset cuts the rate to ``BETA`` of itself (once per window); plenty left, or none
    (the gate's pause), changes nothing."""
    if not remaining or now - state.epoch < WINDOW:
        return state
    rate = rate_at(state, now)
    if remaining >= rate * reset * HINT_HEADROOM:
        return state
    cut = max(state.floor, BETA * rate)
    return _replace(state, good=cut, cut=cut, epoch=now)


def _paused(state: Adaptive, now: float, retry_after: float | None) -> Adaptive:
    """The pause a ``Retry-After`` begins (or extends), as the client's gate keeps it."""
    if not retry_after or retry_after <= 0:
        return state
    until = now + retry_after
    if until <= state.pause_until:
        return state
    return _replace(state, pause_until=until,
                    paused=state.paused + until - max(state.pause_until, now))


def _rolled(state: Adaptive, now: float) -> Adaptive:
    """The counts with their buckets moved on to ``now``."""
    gap = now - state.since
    if gap < WINDOW:
        return state
    if gap < 2 * WINDOW:
        return _replace(state, since=state.since + WINDOW, ok=0, ok_prev=state.ok,
                        limited=0, limited_prev=state.limited, busy=0,
                        busy_prev=state.busy, paused=0.0, paused_prev=state.paused)
    return _replace(state, since=now, ok=0, ok_prev=0, limited=0, limited_prev=0, busy=0,
                    busy_prev=0, paused=0.0, paused_prev=0.0)


def _last_second(state: Adaptive, now: float, current: float, previous: float) -> float:
    overlap = 1.0 - (now - state.since) / WINDOW
    return current + previous * overlap if overlap > 0 else float(current)


def _replies(state: Adaptive, now: float) -> float:
    return (_last_second(state, now, state.ok, state.ok_prev)
            + _last_second(state, now, state.limited, state.limited_prev)
            + _last_second(state, now, state.busy, state.busy_prev))
