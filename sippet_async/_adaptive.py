"""The adaptive rate, with no I/O: how fast the replies say the client should send.

One small state object, ``Adaptive``, and pure transitions that take the time as a number
(seconds on any monotonic clock). The built-in limiter (``_ratelimit.RateLimit``) keeps one
and asks ``rate_at`` how fast to send; the limiter shared by many processes
(``sippet_async.redis.RedisRateLimit``) keeps the same few numbers in Redis and runs the
same functions on them.

The rules (issue 12):

* **A 429 teaches the quota.** When 429s cluster (at least ``LIMITED_MIN`` in the last
  second, and ``LIMITED_SHARE`` of the replies), the successes of the last second are what
  the server accepts: the rate is set there in one step (never above the current rate,
  never below the floor), at most once per window. A stray 429 changes nothing; its
  ``Retry-After`` pause is the gate's business.
* **A cut that changes nothing is undone.** 429s that keep coming at the same share after
  a cut (checked ``VERDICT_FROM`` to ``VERDICT_UNTIL`` seconds after it) are not about the
  rate: a proxy's or a shared edge's noise. The rate returns to where it was. Whatever
  share of 429s remains after a cut is remembered as ``stray``: later cuts need twice it,
  and a learned quota counts the stray 429s as accepted, so noise never spirals the rate
  down.
* **A stray 503 is not overload.** Only a cluster of 503s with ``Retry-After``
  (``BUSY_MIN`` and ``BUSY_SHARE``) cuts the rate, to ``BETA`` of what the server accepted,
  and remembers that as the last good rate.
* **Hints** (``RateLimit-Remaining`` too low for the reset) cut to ``BETA`` of the rate.
* **Recover fast, probe carefully** (CUBIC, as TCP and botocore's adaptive mode): after a
  cut the rate climbs back to the last good rate along a concave cubic in ``RECOVER``
  seconds, then probes above it along a convex one, slowly at first (+1.5% after 10 s)
  and faster the longer it holds (+12% after 20 s), up to the ceiling.

The success and pushback counts of the last second are kept in ``SLOTS`` slots of
``WINDOW / SLOTS`` seconds each (the current one, and a tuple of the ones before, the
oldest weighted by how much of it the last second covers): exact at a steady rate, within
one slot's count however bursty the sends, a few numbers however fast the client sends.
"""

from __future__ import annotations

import math
from typing import Final

import msgspec

__all__ = ["Adaptive", "Tally", "busy", "hinted", "learn", "limited", "pushed_back", "rate_at",
           "start", "succeeded"]

WINDOW: Final = 1.0  # seconds: the server's window, and the span of the counts
SLOTS: Final = 20
SLOT: Final = WINDOW / SLOTS
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
# The verdict on a cut: 429s at HOLDS x the share that caused it, from 2 s to 4 s after it
# (the first second after a cut still carries the old rate's sends), mean it changed nothing.
VERDICT_FROM: Final = 2.0
VERDICT_UNTIL: Final = 4.0
HOLDS: Final = 0.75
UNDO_SHARE: Final = 0.02  # and at least this share: a limit's last few 429s are not noise
STRAY_FACTOR: Final = 2.0  # a cut needs a 429 share above twice the known stray share
MAX_STRAY: Final = 0.5


class Adaptive(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The adaptive state of one limiter: rates in requests per second, times in seconds.

    Attributes:
        ceiling: the configured rate (``inf``: none, a rate learned from a 429).
        floor: the rate is never set below this.
        good: the last rate the server accepted (CUBIC's W_max).
        cut: the rate set by the last cut.
        epoch: when the last cut happened (``-inf``: never); recovery and probing count
            from it.
        slot: the number of the current slot (``floor(now / SLOT)``).
        ok, limited, busy: successes, 429s and 503s with ``Retry-After`` in this slot;
            the ``_ring`` fields, in the ``SLOTS`` slots before it, oldest first.
        first: the time of the first reply counted (before a second has passed, nothing
            is learned).
        before: the rate just before the last learned cut (0: none to judge); ``share``:
            the 429 share of the last second when it was made.
        stray: the share of 429s known not to depend on the rate (0: none seen).
    """

    ceiling: float
    floor: float
    good: float
    cut: float
    epoch: float = -math.inf
    slot: int = -(2**62)
    ok: int = 0
    ok_ring: tuple[int, ...] = ()
    limited: int = 0
    limited_ring: tuple[int, ...] = ()
    busy: int = 0
    busy_ring: tuple[int, ...] = ()
    first: float = math.inf
    before: float = 0.0
    share: float = 0.0
    stray: float = 0.0


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
    if good == math.inf:  # a cut undone where there was no limit: none again
        return state.ceiling
    if t < RECOVER:
        x = t / RECOVER - 1.0  # -1 at the cut, 0 once recovered
        rate = good + (good - state.cut) * x * x * x
    else:
        t -= RECOVER
        rate = good * (1.0 + PROBE * t * t * t) if t < 1e6 else math.inf
    return min(state.ceiling, rate)


def accepted(state: Adaptive, now: float) -> float:
    """Successes per second over the last second (an estimate from the two buckets), with
    the known stray 429s counted as accepted: they are not the quota's doing."""
    state = _rolled(state, now)
    ok = _last_second(state, now, state.ok, state.ok_ring)
    return ok / WINDOW / (1.0 - min(state.stray, MAX_STRAY))


def succeeded(state: Adaptive, now: float, count: int = 1) -> Adaptive:
    """``count`` replies, at ``now``, that were not a 429 or a 503."""
    if now >= (state.slot + 1) * SLOT:
        state = _rolled(state, now)
        if state.first == math.inf:
            state = _replace(state, first=now)
    return _replace(state, ok=state.ok + count)


class Tally:
    """An ``Adaptive`` state whose successes are counted in place within a slot, and folded
    in when the slot ends or the state is read: a success costs an addition, not a new
    state (register of speed shortcuts, docs/design.md).

    Attributes:
        state: the state with every success counted so far.
    """

    __slots__ = ("_count", "_slot_at", "_slot_end", "_state")

    def __init__(self, state: Adaptive) -> None:
        self._state = state
        self._count = 0
        self._slot_at = 0.0
        self._slot_end = -math.inf

    @property
    def state(self) -> Adaptive:
        if self._count:
            self._state = succeeded(self._state, self._slot_at, self._count)
            self._count = 0
        return self._state

    @state.setter
    def state(self, state: Adaptive) -> None:
        self._count = 0
        self._slot_end = -math.inf
        self._state = state

    def succeeded(self, now: float) -> None:
        """A reply that was not a 429 or a 503, at ``now``."""
        if now < self._slot_end:
            self._count += 1
            return
        if self._count:
            self._state = succeeded(self._state, self._slot_at, self._count)
        self._slot_at = now
        self._slot_end = (math.floor(now / SLOT) + 1) * SLOT
        self._count = 1


def limited(state: Adaptive, now: float) -> Adaptive:
    """A 429: counted; when 429s cluster, the rate becomes what the server accepted; when
    they go on at the same share after such a cut, the cut is undone."""
    state = _rolled(state, now)
    state = _replace(state, limited=state.limited + 1, first=min(state.first, now))
    since_cut = now - state.epoch
    if since_cut < WINDOW:  # the replies of one burst all say the same: one cut
        return state
    n = _last_second(state, now, state.limited, state.limited_ring)
    share = n / _replies(state, now)
    if n < LIMITED_MIN or share < LIMITED_SHARE:
        return state
    if state.before and since_cut < VERDICT_UNTIL:
        if since_cut < VERDICT_FROM:  # the cut's effect is not visible yet
            return state
        if share >= max(HOLDS * state.share, UNDO_SHARE):  # it changed nothing: noise
            return _replace(state, good=state.before, cut=rate_at(state, now), epoch=now,
                            before=0.0, stray=max(state.stray, share))
        if share < UNDO_SHARE:  # it helped: the few 429s left are noise
            return _replace(state, before=0.0, stray=max(state.stray, share))
        # It helped, not enough: learn again from the new rate.
    if share < STRAY_FACTOR * state.stray:
        return state
    return learn(state, now)


def learn(state: Adaptive, now: float) -> Adaptive:
    """Set the rate to the successes of the last second, within [floor, current rate]
    (unchanged when the server accepted at least the current rate, or the counts span
    less than a second: a young job's successes say nothing of a quota per second)."""
    state = _rolled(state, now)
    current = rate_at(state, now)
    rate = max(state.floor, accepted(state, now))
    if not 0.0 < rate < current or now - state.first < WINDOW:
        return state
    # No ceiling (rate_limit=None): the floor is set by the first rate learned.
    floor = state.floor or MIN_FACTOR * rate
    n = _last_second(state, now, state.limited, state.limited_ring)
    return _replace(state, good=rate, cut=rate, epoch=now, floor=floor, before=current,
                    share=n / _replies(state, now))


def busy(state: Adaptive, now: float) -> Adaptive:
    """A 503 with ``Retry-After``: counted; when they cluster, cut to ``BETA`` of what the
    server accepted, and return to that quickly (its pause is the gate's business)."""
    state = _rolled(state, now)
    state = _replace(state, busy=state.busy + 1, first=min(state.first, now))
    if now - state.epoch >= WINDOW:
        n = _last_second(state, now, state.busy, state.busy_ring)
        if n >= BUSY_MIN and n >= BUSY_SHARE * _replies(state, now):
            good = min(rate_at(state, now), max(state.floor, accepted(state, now)))
            state = _replace(state, good=good, cut=max(state.floor, BETA * good), epoch=now,
                             before=0.0)
    return state


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


def pushed_back(state: Adaptive, now: float, status: int, remaining: int | None = None,
                reset: float | None = None) -> Adaptive:
    """What a pushback teaches: a 429 (``limited``), a 503 with ``Retry-After`` (``busy``),
    or ``RateLimit-*`` hints on any other reply (``hinted``)."""
    if status == 429:
        return limited(state, now)
    if status == 503:
        return busy(state, now)
    if remaining is not None and reset is not None:
        return hinted(state, now, remaining, reset)
    return state


def _rolled(state: Adaptive, now: float) -> Adaptive:
    """The counts with their slots moved on to ``now``."""
    slot = math.floor(now / SLOT)
    gap = slot - state.slot
    if gap <= 0:
        return state
    keep = SLOTS
    if gap > keep:
        return _replace(state, slot=slot, ok=0, ok_ring=(), limited=0, limited_ring=(),
                        busy=0, busy_ring=())
    zeros = (0,) * (gap - 1)
    return _replace(state, slot=slot, ok=0, ok_ring=(*state.ok_ring, state.ok, *zeros)[-keep:],
                    limited=0, limited_ring=(*state.limited_ring, state.limited, *zeros)[-keep:],
                    busy=0, busy_ring=(*state.busy_ring, state.busy, *zeros)[-keep:])


def _last_second(state: Adaptive, now: float, current: int, ring: tuple[int, ...]) -> float:
    """A count over the last second: this slot, the slots before it, and the oldest one
    weighted by how much of it the second still covers."""
    if len(ring) < SLOTS:
        return float(current + sum(ring))
    elapsed = now / SLOT - state.slot
    return current + sum(ring[1:]) + ring[0] * (1.0 - elapsed)


def _replies(state: Adaptive, now: float) -> float:
    """Replies counted in the last second (at least 1)."""
    return max(1.0, _last_second(state, now, state.ok, state.ok_ring)
               + _last_second(state, now, state.limited, state.limited_ring)
               + _last_second(state, now, state.busy, state.busy_ring))
