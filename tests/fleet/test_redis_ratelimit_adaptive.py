"""The fleet's adaptive rate: ``_adaptive``'s rules on state kept in Redis, counted on
Redis's clock, against a real redis-server (and the fake server's rolling limit)."""

from __future__ import annotations

import asyncio
import itertools
import math

import pytest
import redis

from sippet_async import Pushback, RetryPolicy, SippetClient
from sippet_async import _adaptive as adaptive
from sippet_async._adaptive import Adaptive
from sippet_async.redis import RedisRateLimit
from sippet_async.redis._scripts import CURVE, POLICY
from sippet_async.testing import FakeSippet, Faults, worst_window

from ._fleet import KEY, MARGIN, drive, statuses
from ._support import poll_until

_RATE_AT = CURVE + """
local function number(value)
  return tonumber(value)  -- '' (missing): nil
end
return string.format('%.17g', rate_at(number(ARGV[1]), number(ARGV[2]), number(ARGV[3]),
                                      number(ARGV[4]), number(ARGV[5])))
"""


def test_the_lua_curve_is_rate_at(redis_url: str) -> None:
    """The rate every reservation paces at (Lua) is ``_adaptive.rate_at``, to the last bit,
    over cuts, recoveries, probes and ceilings."""
    epoch = 1_764_748_081.123456
    grid = itertools.product(
        (40.0, 200.0, 1000.0),  # ceiling
        (5.0, 100.0, 333.3),  # good
        (0.3, 0.7, 1.0),  # cut, as a share of good
        (-1e-6, 0.0, 0.25, 1.0, 1.999999, 2.0, 2.5, 12.0, 22.0, 61.0, 1e6 + 1.5, 3e6))
    with redis.Redis.from_url(redis_url) as connection:
        curve = connection.register_script(_RATE_AT)
        for ceiling, good, share, t in grid:
            state = Adaptive(ceiling=ceiling, floor=0.05 * ceiling, good=good,
                             cut=good * share, epoch=epoch)
            lua = float(curve(args=[ceiling, state.good, state.cut, epoch, epoch + t]))
            assert lua == adaptive.rate_at(state, epoch + t), (ceiling, good, share, t)
        never = adaptive.start(200.0)  # never cut: no epoch in Redis
        assert float(curve(args=[200.0, "", "", "", epoch])) == adaptive.rate_at(never, epoch)


async def _settled(limit: RedisRateLimit, *, busy: int = 0, cut: bool = False
                   ) -> tuple[Adaptive, float]:
    """The fleet's state once the pushbacks told so far are in Redis (they are sent from
    tasks of their own)."""
    found: list[tuple[Adaptive, float]] = []

    async def done() -> bool:
        state, now = await limit.shared_state()
        found[:] = [(state, now)]
        counted = state.busy + sum(state.busy_ring)
        return counted >= busy and (not cut or math.isfinite(state.epoch))

    await poll_until(done, within=10.0)
    return found[0]


async def test_a_stray_503_does_not_cut_a_cluster_does_then_the_rate_recovers(
        redis_url: str) -> None:
    """One 503 among 200 successes leaves the shared rate alone; a cluster cuts it to 0.7
    of what the fleet accepted, and it climbs back along ``rate_at``'s curve, read by
    another process through ``shared_rate()`` on Redis's clock."""
    first = RedisRateLimit(redis_url, key="acct", rate=1000)
    second = RedisRateLimit(redis_url, key="acct", rate=1000)
    try:
        for _ in range(200):
            first.succeeded()
        first.pushback(Pushback(status=503, retry_after=0.001))
        state, now = await _settled(first, busy=1)
        assert adaptive.accepted(state, now) == pytest.approx(200.0, abs=1.0)
        assert state.epoch == -math.inf
        assert await second.shared_rate() == 1000.0

        for _ in range(14):
            first.pushback(Pushback(status=503, retry_after=0.001))
        state, now = await _settled(first, busy=15, cut=True)
        assert state.good == pytest.approx(200.0, abs=1.0)  # the fleet's accepted rate
        assert state.cut == pytest.approx(0.7 * state.good)
        readings = []
        while now - state.epoch < adaptive.RECOVER + 0.1:
            rate = await second.shared_rate()
            _, later = await second.shared_state()
            # Read between two instants of Redis's clock: the curve's values at them.
            assert adaptive.rate_at(state, now) * (1 - 1e-12) <= rate \
                <= adaptive.rate_at(state, later) * (1 + 1e-12)
            readings.append((now - state.epoch, rate))
            now = later
            await asyncio.sleep(0.02)  # spreads the readings over the curve
        assert [rate for _, rate in readings] == sorted(rate for _, rate in readings)
        assert any(0.2 < t < 1.8 and state.cut < rate < state.good for t, rate in readings)
        assert readings[-1][1] == pytest.approx(state.good, rel=1e-3)
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_429_cluster_teaches_the_fleet_its_accepted_rate(redis_url: str) -> None:
    """Two processes at 2.5x the account's limit: the 429s teach the quota the whole
    fleet's successes show (not one process's share), and every process paces at it."""
    quota = 40
    # 30 ms of latency: a few requests are on their way when the window fills, so its 429s
    # cluster (at 10 ms apart with none in flight, each 429's exact pause leaves one
    # 429 per window: strays, which the pause alone answers).
    async with FakeSippet(KEY, faults=Faults(rate_limit=quota, latency=0.03)) as server:
        limits = [RedisRateLimit(redis_url, key="acct", rate=2.5 * quota, batch=2,
                                 margin=MARGIN) for _ in range(2)]
        clients = [SippetClient(KEY, base_url=server.url, rate_limit=limit, max_concurrency=8,
                                retry=RetryPolicy(attempts=20)) for limit in limits]
        try:
            assert await drive(clients, 150) == 150
            state, now = await limits[0].shared_state()
            rates = [await limit.shared_rate() for limit in limits]
        finally:
            for client in clients:
                await client.aclose()
        requests = server.requests
    assert math.isfinite(state.epoch)  # a cut was learned...
    assert 0.75 * quota <= state.good <= 1.1 * quota  # ...from the fleet's successes
    # Both read the one curve (a moment apart: it may have probed up by a hair between).
    assert rates == pytest.approx([adaptive.rate_at(state, now)] * 2, rel=0.01)
    # Once learned, the fleet stays within the limit: the last 60 requests drew no 429.
    assert statuses(requests[-60:]) == {200: 60}
    assert worst_window([request.received_at for request in requests[-60:]]) <= quota


async def test_successes_ride_on_reservations(redis_url: str) -> None:
    """At saturation a process makes at most 0.15 Redis round trips per request, and the
    fleet's counts hold its successes all the same."""
    rate = 300
    async with FakeSippet(KEY) as server:
        # late=0.1: the test measures batching, not how late a busy machine wakes a task.
        limit = RedisRateLimit(redis_url, key="acct", rate=rate, late=0.1)
        client = SippetClient(KEY, base_url=server.url, rate_limit=limit, max_concurrency=16)
        try:
            assert await drive([client], rate, tasks=16) == rate
            round_trips = limit.round_trips
            state, now = await limit.shared_state()
        finally:
            await client.aclose()
    assert round_trips <= 0.15 * rate
    assert adaptive.accepted(state, now) >= 0.5 * rate


async def test_scarce_hints_cut_the_shared_rate_plentiful_ones_cost_nothing(
        redis_url: str) -> None:
    """Hints that leave plenty make no round trip; hints that leave fewer than half of what
    the fleet would send before the reset cut the shared rate to 0.7 of itself, once."""
    limit = RedisRateLimit(redis_url, key="acct", rate=100)
    try:
        await limit.acquire()  # a reservation: what the process knows of the policy
        round_trips = limit.round_trips
        limit.pushback(Pushback(status=200, remaining=900, reset=1.0))
        for _ in range(3):
            limit.pushback(Pushback(status=200, remaining=3, reset=10.0))
        await limit.aclose()  # waits for what is being shared
        assert limit.round_trips == round_trips + 2  # one hint shared, and its policy
        state, _ = await limit.shared_state()
        assert state.good == state.cut == pytest.approx(70.0)
        assert await limit.shared_rate() == pytest.approx(70.0)
    finally:
        await limit.aclose()


def test_a_policy_written_since_it_was_read_wins(redis_url: str) -> None:
    """The compare-and-set of a decided policy: a process that read an older version
    writes nothing (another process decided for this window)."""
    with redis.Redis.from_url(redis_url) as connection:
        write = connection.register_script(POLICY)
        assert write(keys=["state"], args=[0, 60_000, "good", 50.0, "cut", 50.0]) == 1
        assert write(keys=["state"], args=[0, 60_000, "good", 20.0, "cut", 20.0]) == 0
        assert connection.hmget("state", "good", "cut", "version") == [b"50.0", b"50.0", b"1"]


async def test_a_429_without_retry_after_is_counted_and_pauses_nothing(redis_url: str) -> None:
    """A 429 with no ``Retry-After`` still counts towards the fleet's cluster, and sets no
    pause (the pause key is only set for a positive pause)."""
    limit = RedisRateLimit(redis_url, key="acct", rate=100)
    try:
        limit.pushback(Pushback(status=429))
        await limit.aclose()  # waits for what is being shared
        state, _ = await limit.shared_state()
    finally:
        await limit.aclose()
    assert state.limited + sum(state.limited_ring) == 1
    with redis.Redis.from_url(redis_url) as connection:
        assert connection.exists("sippet:ratelimit:{acct}:pause") == 0
