"""``RedisRateLimit``: one rate limit, and one pause, shared by every process using a key.

GCRA in one Lua script (``_scripts.RESERVE``) on Redis's own clock grants slots: send times
spaced ``(1 + margin) / rate`` apart on one schedule shared by the whole fleet, with no
burst. A process reserves up to ``batch`` consecutive slots per round trip and keeps them
in a local queue, converted to its own clock at the moment the reply arrives; a task that
wakes for its slot more than ``late`` seconds after the slot's time drops it instead of
sending into a window its neighbours may have filled.

The rate is adaptive, by the rules of ``_adaptive`` (the built-in ``RateLimit``'s), with
the state fleet-wide in the same Redis hash, counted on Redis's clock: so the fleet learns
the account's quota from its 429s, cuts only on clustered 503s and recovers like one
client. Each process counts its successes locally and hands them to its next reservation
(no round trip of their own); the reservation adds them to the fleet's counts and spaces
its slots by the rate of ``_adaptive.rate_at``, computed in the script.

A 429 (or a 503 with ``Retry-After``) seen by any process runs ``_scripts.PUSHBACK``: the
pushback is counted, the pause key is set with a PX expiry (checked by every reservation)
and the pause published; each process, hearing it, drops the slots it holds and pauses its
clients' gates (through ``attach_pause``). The script returns the fleet's state and
Redis's time; the process runs the rule (``_adaptive.limited`` / ``busy`` / ``hinted``) on
it and, when the policy changes, writes it with ``_scripts.POLICY``, a compare-and-set on
the state's version. A write that loses is dropped: another process changed the policy
since, and every rule changes it at most once per window, so that decision stands for this
pushback too (its count is in Redis for the next one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from sippet_async import _adaptive as adaptive
from sippet_async._adaptive import Adaptive
from sippet_async._errors import UsageError
from sippet_async._limiter import Pushback, check_rate
from sippet_async._ratelimit import DEFAULT_WINDOW_MARGIN, RateLimit

from ._connection import DEFAULT_REDIS_TIMEOUT, REDIS_FAILURES, RedisUnavailableError, connect
from ._scripts import POLICY, PUSHBACK, RESERVE, SCALE

__all__ = ["RedisRateLimit"]

log: Final = logging.getLogger("sippet_async")

# 8 slots per round trip: 0.125 Redis round trips per request at saturation; with 1 slot
# per round trip 8 processes reached only 0.749 R (the prototypes).
DEFAULT_BATCH: Final = 8
# A slot woken this late is dropped: the window margin (15 ms) must also absorb the jitter
# between the send and the server's arrival stamp.
DEFAULT_LATE: Final = 0.010
# The policy fields of ``_adaptive.Adaptive`` kept in Redis (the counts are kept per slot).
POLICY_FIELDS: Final = ("good", "cut", "epoch", "before", "share", "stray")
# A key idle this long is dropped by Redis (the learned rate with it).
IDLE_EXPIRY_MS: Final = 600_000
# While on the fallback limit, Redis is tried again this often.
RECONNECT_INTERVAL: Final = 1.0
# After the pub/sub connection is lost, subscribe again this soon: pauses published
# meanwhile are missed (the pause key still stops new reservations).
RESUBSCRIBE_INTERVAL: Final = 0.1
KEY_PREFIX: Final = "sippet:ratelimit:"

PauseListener = Callable[[float], None]


class RedisRateLimit:
    """One no-burst rate limit shared through Redis by every process using ``key``.

    Pass it as ``SippetClient(rate_limit=...)``. Every limiter on the same Redis and key
    (in any process, on any machine) shares one schedule of at most ``rate`` requests per
    second and one pause: a 429 or a 503 with ``Retry-After`` seen by any of them holds back
    every process, slots already reserved included. The rate adapts as the built-in
    ``RateLimit``'s does, on the whole fleet's replies: a cluster of 429s sets it to what
    the fleet got accepted, and so on (docs/guides/fleet.md, "Shared adaptive rate").

    Args:
        redis: a ``redis://`` URL (the limiter owns the connection) or a
            ``redis.asyncio.Redis`` client (borrowed, never closed).
        key: names the shared limit: one key per Sippet account (per API key).
        rate: the account's limit, requests per second (every process the same).
        batch: slots reserved per Redis round trip.
        fallback_rate: when Redis does not answer, pace this process locally at this rate
            (with a warning) and return to the shared limit once Redis answers; None (the
            default) raises ``RedisUnavailableError`` instead.
        margin: the fraction by which slots are spread wider than ``1 / rate``.
        late: a slot woken more than this many seconds late is dropped.
        redis_timeout: seconds to connect to Redis and to wait for a reply.

    Attributes:
        url: the Redis server, password replaced by ``***``.
        round_trips: Redis round trips so far (reservations, pushbacks and the policies they
            decide, ``scale``, ``shared_state``).
        dropped: slots reserved but not sent: woken too late, or voided by a pause or by
            losing Redis.

    Raises:
        UsageError: a bad rate, key, batch or fallback rate.

    Example:
        limit = RedisRateLimit("redis://redis.internal:6379/0", key="acct-42", rate=200)
        async with SippetClient(key, rate_limit=limit) as client: ...
    """

    def __init__(self, redis: str | aioredis.Redis, *, key: str, rate: float,
                 batch: int = DEFAULT_BATCH, fallback_rate: float | None = None,
                 margin: float = DEFAULT_WINDOW_MARGIN, late: float = DEFAULT_LATE,
                 redis_timeout: float = DEFAULT_REDIS_TIMEOUT) -> None:
        self.rate = check_rate("rate", rate)
        if not isinstance(key, str) or not key:
            raise UsageError(f"key must be a non-empty string, got {key!r}")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise UsageError(f"batch must be a positive integer, got {batch!r}")
        self.key = key
        self.batch = batch
        self.fallback_rate = None if fallback_rate is None \
            else check_rate("fallback_rate", fallback_rate)
        self._redis, self.url, self._owned = connect(redis, timeout=redis_timeout)
        if self._owned:  # one quick retry on a connection lost since its last use
            self._redis.set_retry(Retry(NoBackoff(), 1))
        state = f"{KEY_PREFIX}{{{key}}}"  # one hash slot for both keys (Redis Cluster)
        self._keys = (state, f"{state}:pause")
        self._channel = f"{state}:pause"
        self._window_us = (1.0 + margin) * 1e6
        self._late = late
        self._reserve = self._redis.register_script(RESERVE)
        self._pushback = self._redis.register_script(PUSHBACK)
        self._policy = self._redis.register_script(POLICY)
        self._scale = self._redis.register_script(SCALE)
        self._start = adaptive.start(self.rate)
        self._ok = 0  # successes not yet handed to a reservation
        # What the last reservation said of the policy (good, cut, epoch, as Redis holds
        # them; as a state, built when a hint needs it) and Redis's clock minus the loop's:
        # enough to judge a hint locally.
        self._seen: tuple[Any, Any, Any] = (None, None, None)
        self._known: Adaptive | None = self._start
        self._offset = 0.0
        self._hinted_at = -math.inf  # Redis's time of the last hint this process shared
        # Slots held: (send time on the loop's clock, pause epoch when reserved).
        self._slots: deque[tuple[float, int]] = deque()
        self._epoch = 0  # +1 for each pause heard: slots of an older epoch are void
        self._paused_until = 0.0
        self._wanting = 0  # tasks in acquire() holding no slot
        # Slots asked per reservation: doubled each time a reservation is used up, halved
        # when a slot expires unused (an idle process must not hold the fleet's slots).
        self._ask = 1
        self._reserving: asyncio.Future[BaseException | None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._gates: list[Callable[[], PauseListener | None]] = []
        self._fallback = None if self.fallback_rate is None else RateLimit(self.fallback_rate)
        self._fallback_until: float | None = None
        self.round_trips = 0  # Redis round trips: reservations and pushbacks
        self.dropped = 0  # slots dropped: woken too late, or voided by a pause

    def __repr__(self) -> str:
        return f"RedisRateLimit({self.url!r}, key={self.key!r}, rate={self.rate:g})"

    def attach_pause(self, pause: PauseListener) -> None:
        """Call ``pause(seconds)`` when the fleet pauses (the client's own pause gate).

        Held weakly when it is a bound method, so a closed client is not kept alive.
        """
        if hasattr(pause, "__self__"):
            self._gates.append(weakref.WeakMethod(pause))
        else:
            self._gates.append(lambda: pause)

    async def acquire(self) -> None:
        """Wait for a slot of the shared schedule (or of the fallback limit).

        Raises:
            RedisUnavailableError: Redis did not answer and there is no ``fallback_rate``.
        """
        loop = asyncio.get_running_loop()
        if self._listener is None or self._listener.done():
            self._listener = loop.create_task(self._listen())
        self._wanting += 1  # how many slots the next reservation asks for
        try:
            while True:
                now = loop.time()
                wait = self._paused_until - now
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                if self._fallback_until is not None and now < self._fallback_until:
                    assert self._fallback is not None
                    self._wanting -= 1
                    try:
                        await self._fallback.acquire()
                    finally:
                        self._wanting += 1
                    return
                slot = self._take(now)
                if slot is None:
                    await self._refill()
                    continue
                at, epoch = slot
                self._wanting -= 1
                try:
                    if at > now:
                        await asyncio.sleep(at - now)
                finally:
                    self._wanting += 1
                if epoch != self._epoch or loop.time() - at > self._late:
                    self.dropped += 1  # voided by a pause, or too late for its window
                    continue
                return
        finally:
            self._wanting -= 1

    def _take(self, now: float) -> tuple[float, int] | None:
        """The next slot held, dropping those already too late to send."""
        slots = self._slots
        while slots:
            slot = slots.popleft()
            if slot[1] == self._epoch and now - slot[0] <= self._late:
                if not slots:  # a whole reservation used: ask for more next time
                    self._ask = min(self.batch, self._ask * 2)
                return slot
            self.dropped += 1
            self._ask = max(1, self._ask // 2)  # slots left unused: ask for fewer
        return None

    async def _refill(self) -> None:
        """Wait for the one reservation in flight (starting it if none is)."""
        if self._reserving is None:
            self._reserving = asyncio.ensure_future(self._reserve_slots())
        failure = await asyncio.shield(self._reserving)
        if failure is not None:
            raise RedisUnavailableError(
                f"Redis at {self.url} did not answer ({type(failure).__name__}): the shared "
                f"rate limit {self.key!r} cannot grant a request", url=self.url) from failure

    async def _reserve_slots(self) -> BaseException | None:
        """One round trip: up to ``batch`` slots, or the pause left."""
        loop = asyncio.get_running_loop()
        epoch = self._epoch
        wanted = min(self.batch, max(self._ask, self._wanting))
        # Successes ride on the reservation; lost with it if Redis fails (the fleet's
        # counts could not have them in time anyway).
        ok, self._ok = self._ok, 0
        try:
            reply = await self._reserve(keys=self._keys, args=[
                self.rate, self._window_us, wanted, ok, IDLE_EXPIRY_MS])
            self.round_trips += 1
        except REDIS_FAILURES as exc:
            return self._unavailable(exc)
        finally:
            self._reserving = None
        granted, delay_ns, spacing_ns, pause_ms, now_us = (int(value) for value in reply[:5])
        now = loop.time()
        seen = (reply[5], reply[6], reply[7])
        if seen != self._seen:
            self._seen, self._known = seen, None
        self._offset = now_us / 1e6 - now
        if self._fallback_until is not None:
            self._fallback_until = None
            log.warning("Redis at %s answers again: back to the shared rate limit %r",
                        self.url, self.key)
        if pause_ms > 0:
            self._paused(pause_ms / 1000)
        elif epoch == self._epoch:  # else a pause was heard meanwhile: these are void
            first, spacing = now + delay_ns / 1e9, spacing_ns / 1e9
            self._slots.extend((first + i * spacing, epoch) for i in range(granted))
        else:
            self.dropped += granted
        return None

    def _unavailable(self, exc: BaseException) -> BaseException | None:
        """Redis failed: the failure to raise, or None once on the fallback limit."""
        self._void()  # their schedule may be gone with Redis's data
        if self._fallback is None:
            return exc
        now = asyncio.get_running_loop().time()
        if self._fallback_until is None:
            log.warning("Redis at %s did not answer (%s): the shared rate limit %r falls "
                        "back to %g/s in this process until it does", self.url,
                        type(exc).__name__, self.key, self.fallback_rate)
        self._fallback_until = now + RECONNECT_INTERVAL
        return None

    def succeeded(self) -> None:
        """A reply without pushback: counted here, handed to Redis with the next
        reservation."""
        self._ok += 1

    def pushback(self, pushback: Pushback) -> None:
        """A 429 / 503 with ``Retry-After`` (or an exhausted window) pauses the whole fleet;
        each is counted in the fleet's state, whose rules may change the shared rate, as
        may hints that leave too few requests."""
        pause = pushback.retry_after if pushback.throttled else None
        if pushback.remaining == 0 and pushback.reset is not None:
            pause = max(pause or 0.0, pushback.reset)
        if pause is not None and pause <= 0:
            pause = None
        if pause is None and not pushback.throttled and not self._hint_cuts(pushback):
            return
        if pause is not None:
            self._paused(pause)
        task = asyncio.get_running_loop().create_task(self._share(pause, pushback))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _hint_cuts(self, pushback: Pushback) -> bool:
        """Whether hints would cut the shared rate, judged on the policy the last
        reservation saw (once per window per process: the round trip decides)."""
        if pushback.remaining is None or pushback.reset is None:
            return False
        now = asyncio.get_running_loop().time() + self._offset
        if now - self._hinted_at < adaptive.WINDOW:
            return False
        state = self._known
        if state is None:
            state = self._known = self._with_policy(*(_number(value) for value in self._seen))
        if adaptive.hinted(state, now, pushback.remaining, pushback.reset) is state:
            return False
        self._hinted_at = now
        return True

    async def _share(self, pause: float | None, pushback: Pushback) -> None:
        """Tell the fleet: the count, the pause key, the broadcast; then the rules on the
        fleet's state, and the policy they decide."""
        kind = {429: "l", 503: "b"}.get(pushback.status, "")
        ok, self._ok = self._ok, 0
        try:
            reply = await self._pushback(keys=self._keys, args=[
                0 if pause is None else math.ceil(pause * 1000), kind, ok, self._channel,
                IDLE_EXPIRY_MS])
            self.round_trips += 1
            state, now, version = self._fleet(reply[1:])
            decided = adaptive.pushed_back(state, now, pushback.status, pushback.remaining,
                                           pushback.reset)
            policy = _policy(decided)
            if policy == _policy(state):
                return
            pairs = [part for name, value in zip(POLICY_FIELDS, policy, strict=True)
                     for part in (name, value if math.isfinite(value) else "")]
            written = await self._policy(keys=self._keys[:1],
                                         args=[version, IDLE_EXPIRY_MS, *pairs])
            self.round_trips += 1
            if written:
                log.debug("shared rate limit %r now %.1f/s", self.key,
                          adaptive.rate_at(decided, now))
            else:  # another process decided for this window first: its decision stands
                log.debug("shared rate limit %r: changed meanwhile, decision dropped",
                          self.key)
        except REDIS_FAILURES as exc:
            log.warning("Redis at %s did not answer (%s): a pause or slow-down of the shared "
                        "rate limit %r reached this process only", self.url,
                        type(exc).__name__, self.key)

    def _fleet(self, reply: list[Any]) -> tuple[Adaptive, float, int]:
        """The fleet's ``Adaptive`` state (with this process's ceiling), Redis's time and
        the policy's version, from a script's ``fleet`` reply."""
        now = int(reply[0]) / 1e6
        first, good, cut, epoch, before, share, stray = (_number(v) for v in reply[2:9])
        counts = [int(value) for value in reply[10:]]
        ring = adaptive.SLOTS + 1
        ok, limited, busy = counts[:ring], counts[ring:2 * ring], counts[2 * ring:]
        state = msgspec.structs.replace(
            self._with_policy(good, cut, epoch), slot=int(reply[1]), ok=ok[-1],
            ok_ring=tuple(ok[:-1]), limited=limited[-1], limited_ring=tuple(limited[:-1]),
            busy=busy[-1], busy_ring=tuple(busy[:-1]),
            first=math.inf if first is None else first, before=before or 0.0,
            share=share or 0.0, stray=stray or 0.0)
        return state, now, int(reply[9] or 0)

    def _with_policy(self, good: float | None, cut: float | None,
                     epoch: float | None) -> Adaptive:
        """A fresh state of this limiter's ceiling with the policy Redis holds (None:
        missing, as on a key never cut)."""
        return msgspec.structs.replace(
            self._start, good=self.rate if good is None else good,
            cut=self.rate if cut is None else cut, epoch=-math.inf if epoch is None else epoch)

    async def shared_state(self) -> tuple[Adaptive, float]:
        """The fleet's adaptive state (``_adaptive.Adaptive``, with this limiter's ``rate``
        as its ceiling; the successes this process has not reported yet included) and the
        time on Redis's clock it was read at, seconds.

        Raises:
            RedisUnavailableError: Redis did not answer.
        """
        ok, self._ok = self._ok, 0
        try:
            reply = await self._pushback(keys=self._keys, args=[
                0, "", ok, self._channel, IDLE_EXPIRY_MS])
        except REDIS_FAILURES as exc:
            raise self._failed(exc) from exc
        self.round_trips += 1
        state, now, _ = self._fleet(reply[1:])
        return state, now

    async def shared_rate(self) -> float:
        """The fleet's current rate, requests per second (``rate`` until a cluster of 429s
        or 503s lowers it; ``_adaptive.rate_at`` of the fleet's state, on Redis's clock).

        Raises:
            RedisUnavailableError: Redis did not answer.
        """
        return await self.scale(1.0)

    async def scale(self, factor: float) -> float:
        """Multiply the fleet's current rate by ``factor``, atomically, within
        [5% of ``rate``, ``rate``]; return the new rate. The seam for an adaptive policy
        of one's own: every process on the key paces at the result from its next slots,
        which holds (as the last good rate, with no cut to judge) until the slow probe
        above it or the next pushback moves it. ``scale(1.0)`` only reads.

        Raises:
            RedisUnavailableError: Redis did not answer.
        """
        try:
            reply = await self._scale(keys=self._keys[:1], args=[
                self.rate, factor, self._start.floor, IDLE_EXPIRY_MS])
        except REDIS_FAILURES as exc:
            raise self._failed(exc) from exc
        self.round_trips += 1
        return float(reply)

    def _failed(self, exc: BaseException) -> RedisUnavailableError:
        """The error of a read or change of the shared state that Redis did not answer."""
        return RedisUnavailableError(
            f"Redis at {self.url} did not answer ({type(exc).__name__}): the shared "
            f"rate limit {self.key!r} cannot be read or changed", url=self.url)

    def _void(self) -> None:
        """Drop every slot held, and those sleeping tasks hold."""
        self._epoch += 1
        self.dropped += len(self._slots)
        self._slots.clear()

    def _paused(self, seconds: float) -> None:
        """The fleet pauses for ``seconds`` from now: void the slots held, tell the gates."""
        self._void()
        until = asyncio.get_running_loop().time() + seconds
        self._paused_until = max(self._paused_until, until)
        alive = []
        for ref in self._gates:
            gate = ref()
            if gate is not None:
                gate(seconds)
                alive.append(ref)
        self._gates = alive

    async def _listen(self) -> None:
        """Hear the fleet's pauses; reconnect (and resubscribe) after Redis is lost."""
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] == "message":
                        self._paused(int(message["data"]) / 1000)
            except REDIS_FAILURES:
                # Redis stopped or is out of reach: its schedule may be lost with it (a
                # restart without persistence starts a fresh one at once), so the slots
                # held here are void; pauses published meanwhile are missed.
                self._void()
                await asyncio.sleep(RESUBSCRIBE_INTERVAL)
            finally:
                with contextlib.suppress(*REDIS_FAILURES):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def aclose(self) -> None:
        """Stop listening and close the connection (when owned); used again, the limiter
        reconnects, so clients sharing it may each close it."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        pending: list[asyncio.Future[Any]] = [*self._tasks]
        if self._reserving is not None:
            pending.append(self._reserving)
        if pending:  # a pause being shared, a reservation its waiters gave up on
            await asyncio.gather(*pending, return_exceptions=True)
        if self._owned:
            with contextlib.suppress(*REDIS_FAILURES):
                await self._redis.aclose()


def _number(value: bytes | str | None) -> float | None:
    """A number Redis holds, or None when missing (or empty: not finite)."""
    return None if value is None or value == b"" or value == "" else float(value)


def _policy(state: Adaptive) -> tuple[float, ...]:
    """The fields of ``state`` the fleet keeps as its policy (``POLICY_FIELDS``)."""
    return tuple(getattr(state, name) for name in POLICY_FIELDS)
