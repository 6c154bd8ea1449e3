"""RedisRateLimit against a real redis-server and the fake server's rolling-window limit:
one exact limit and one pause for every client on a key, read from the server's records."""

from __future__ import annotations

import asyncio
import logging
import math

import pytest

from sippet_async import Observer, PauseEvent, ResponseEvent, RetryPolicy, SippetClient
from sippet_async.redis import RedisRateLimit, RedisUnavailableError
from sippet_async.redis._connection import shown_url
from sippet_async.testing import FakeSippet, Faults, RedisServer, Reply, worst_window

from ._fleet import KEY, MARGIN, drive, statuses

RATE = 50


def _clients(server: FakeSippet, limits: list[RedisRateLimit], **kwargs: object
             ) -> list[SippetClient]:
    return [SippetClient(KEY, base_url=server.url, rate_limit=limit, max_concurrency=8,
                         **kwargs)  # type: ignore[arg-type]
            for limit in limits]


async def _close(clients: list[SippetClient]) -> None:
    for client in clients:
        await client.aclose()


async def test_clients_on_one_key_share_one_exact_limit(redis_url: str) -> None:
    """Three limiters on one key: no rolling second over R (the first included), no 429,
    and the shared rate is used, in few round trips."""
    async with FakeSippet(KEY, faults=Faults(rate_limit=RATE)) as server:
        limits = [RedisRateLimit(redis_url, key="acct", rate=RATE, margin=MARGIN)
                  for _ in range(3)]
        clients = _clients(server, limits)
        try:
            assert await drive(clients, 150) == 150
        finally:
            await _close(clients)
        times = [request.received_at for request in server.requests]
    assert statuses(server.requests) == {200: 150}
    assert worst_window(times) <= RATE
    span = max(times) - min(times)
    # The shared schedule is used, not wasted: each client at R/3 would take 3x as long.
    # (A bound, not a speed target: a loaded machine stretches the span, bench_fleet.py
    # measures the rate.)
    assert 149 / span >= 0.6 * RATE
    assert sum(limit.round_trips for limit in limits) <= 0.5 * 150


async def test_keys_are_separate_limits(redis_url: str) -> None:
    """Two keys (two accounts) do not slow each other down."""
    async with FakeSippet(KEY) as server:
        limits = [RedisRateLimit(redis_url, key=key, rate=RATE) for key in ("a", "b")]
        clients = _clients(server, limits)
        try:
            assert await drive(clients, 100) == 100
        finally:
            await _close(clients)
        times = [request.received_at for request in server.requests]
    assert worst_window(times) > RATE


class _Pauses(Observer):
    """Keeps the pauses a client hears of."""

    def __init__(self) -> None:
        self.pauses: list[PauseEvent] = []

    def on_pause(self, event: PauseEvent) -> None:
        self.pauses.append(event)


class _Throttle(_Pauses):
    """After the n-th response, scripts a 429 with ``Retry-After`` for the next request."""

    def __init__(self, server: FakeSippet, after: int, retry_after: float) -> None:
        super().__init__()
        self.server, self.after, self.retry_after = server, after, retry_after
        self.responses = 0

    def on_response(self, event: ResponseEvent) -> None:
        super().on_response(event)
        self.responses += 1
        if self.responses == self.after:
            self.server.push_reply(Reply(status=429, body=b"429 Too Many Requests",
                                         headers={"Retry-After": f"{self.retry_after}"}))


async def test_a_429_pauses_every_process_including_slots_held(redis_url: str) -> None:
    """A 429 seen by one client pauses all: nothing arrives inside the pause (after the
    requests already in flight), the others drop slots they held, their gates close; the
    shared rate stays (one 429 is a stray, as for one client)."""
    retry_after = 0.5
    async with FakeSippet(KEY) as server:
        limits = [RedisRateLimit(redis_url, key="acct", rate=RATE) for _ in range(3)]
        throttle = _Throttle(server, after=10, retry_after=retry_after)
        others = [_Pauses(), _Pauses()]
        clients = [SippetClient(KEY, base_url=server.url, rate_limit=limit, max_concurrency=8,
                                hooks=hooks)
                   for limit, hooks in zip(limits, [throttle, *others], strict=True)]
        try:
            assert await drive(clients, 90) == 90
        finally:
            await _close(clients)
        requests = server.requests
    [throttled] = [request for request in requests if request.status == 429]
    start = throttled.received_at
    # A request handed to the transport before the broadcast arrived may still land: the
    # 429 travels back, the script runs, the message is delivered (a few ms on loopback).
    in_pause = [request.received_at - start for request in requests
                if start + 0.025 < request.received_at < start + retry_after]
    assert in_pause == []
    assert sum(limit.dropped for limit in limits) > 0  # slots already reserved, voided
    # Whichever client got the 429 paused for it; the two others heard of it.
    causes = sorted((event.cause, event.attempt)
                    for hooks in (throttle, *others) for event in hooks.pauses)
    assert causes == [("429", 1), ("shared", 0), ("shared", 0)]
    # One 429 is a stray (the pause is its answer): the shared rate stays, as one client's.
    probe = RedisRateLimit(redis_url, key="acct", rate=RATE)
    try:
        state, _ = await probe.shared_state()
        assert await probe.shared_rate() == RATE
    finally:
        await probe.aclose()
    assert state.epoch == -math.inf


async def test_one_limiter_shared_by_two_clients_pauses_both(redis_url: str) -> None:
    """Two clients on one limiter: the 429 one of them gets closes the other's gate too,
    once (its own 429 echoed back by Redis grows neither gate)."""
    async with FakeSippet(KEY) as server:
        limit = RedisRateLimit(redis_url, key="acct", rate=RATE)
        throttle = _Throttle(server, after=5, retry_after=0.3)
        other = _Pauses()
        clients = [SippetClient(KEY, base_url=server.url, rate_limit=limit, max_concurrency=4,
                                hooks=hooks) for hooks in (throttle, other)]
        try:
            assert await drive(clients, 30, tasks=4) == 30
        finally:
            await _close(clients)
        requests = server.requests
    [throttled] = [request for request in requests if request.status == 429]
    assert [request for request in requests
            if throttled.received_at + 0.025 < request.received_at
            < throttled.received_at + 0.3] == []
    causes = sorted(event.cause for hooks in (throttle, other) for event in hooks.pauses)
    assert causes == ["429", "shared"]


async def test_the_shared_rate_is_scaled_atomically_within_bounds(redis_url: str) -> None:
    """scale() moves the one rate every limiter on the key reads, never above R nor
    below 5% of it; the slots granted afterwards are spaced for the new rate."""
    first = RedisRateLimit(redis_url, key="acct", rate=100)
    second = RedisRateLimit(redis_url, key="acct", rate=100)
    try:
        assert await first.shared_rate() == 100
        assert await first.scale(0.5) == 50
        assert await second.shared_rate() == 50
        assert await second.scale(10) == 100
        assert await second.scale(0.001) == 5
        await second.scale(1 / 0.05)
        await first.scale(0.5)
        loop = asyncio.get_running_loop()
        stamps = []
        for _ in range(5):
            await second.acquire()
            stamps.append(loop.time())
        # 50/s now, with the margin; a wake-up may be up to ``late`` (10 ms) behind its slot
        assert stamps[-1] - stamps[0] >= 4 * 1.015 / 50 - 0.010
    finally:
        await first.aclose()
        await second.aclose()


async def test_redis_restart_mid_run(own_redis: RedisServer) -> None:
    """Redis restarts (its data gone) in the middle: every call still succeeds (retried
    while Redis is down), the slots held are dropped, and no rolling second carries more
    than R."""
    restarted = asyncio.Event()
    restart_at = 60

    async with FakeSippet(KEY, faults=Faults(rate_limit=RATE)) as server:
        limits = [RedisRateLimit(own_redis.url, key="acct", rate=RATE, margin=MARGIN)
                  for _ in range(2)]
        clients = _clients(server, limits)

        async def restart() -> None:
            await restarted.wait()
            await asyncio.to_thread(own_redis.restart)

        def after(done: int) -> None:
            if done == restart_at:
                restarted.set()

        try:
            restarting = asyncio.create_task(restart())
            assert await drive(clients, 150, after=after) == 150
            await restarting
        finally:
            await _close(clients)
        times = [request.received_at for request in server.requests]
    assert statuses(server.requests) == {200: 150}
    assert worst_window(times) <= RATE
    # Each process dropped the slots it held when its connection to Redis broke: the
    # restarted Redis's fresh schedule does not stack on them.
    assert all(limit.dropped > 0 for limit in limits)


async def test_unreachable_redis_fails_loudly_without_its_password() -> None:
    """With no fallback, a call whose limiter cannot reach Redis fails with
    RedisUnavailableError (a TransportError, not sent); its message hides the password."""
    unused = RedisServer()  # a free port nothing listens on
    url = f"redis://:hunter2@127.0.0.1:{unused.port}/0"
    async with FakeSippet(KEY) as server:
        limit = RedisRateLimit(url, key="acct", rate=RATE)
        async with SippetClient(KEY, base_url=server.url, rate_limit=limit,
                                retry=RetryPolicy(attempts=1)) as client:
            with pytest.raises(RedisUnavailableError) as caught:
                await client.run("list_calls")
        assert server.requests == []
    error = caught.value
    assert error.sent is False
    assert error.url == f"redis://:***@127.0.0.1:{unused.port}/0"
    assert "hunter2" not in str(error)
    assert "hunter2" not in repr(limit)


async def test_a_redis_that_never_answers_times_out_loudly() -> None:
    """A Redis that accepts connections but never replies (a partition, a hung server) is
    RedisUnavailableError after ``redis_timeout``, not a hang."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers; returns when the client gives up
        writer.close()

    hung = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = hung.sockets[0].getsockname()[1]
    try:
        limit = RedisRateLimit(f"redis://127.0.0.1:{port}/0", key="acct", rate=RATE,
                               redis_timeout=0.2)
        try:
            with pytest.raises(RedisUnavailableError, match=f"127.0.0.1:{port}"):
                await asyncio.wait_for(limit.acquire(), 5)
        finally:
            await limit.aclose()
    finally:
        hung.close()
        await hung.wait_closed()


async def test_fallback_rate_then_back_to_the_shared_limit(
        caplog: pytest.LogCaptureFixture) -> None:
    """With fallback_rate, an unreachable Redis means a warning and the local limit; once
    Redis answers, the limiter returns to the shared limit (and says so)."""
    caplog.set_level(logging.WARNING, logger="sippet_async")
    redis_server = RedisServer()  # not started yet: its port refuses connections
    async with FakeSippet(KEY) as server:
        limit = RedisRateLimit(redis_server.url, key="acct", rate=RATE, fallback_rate=20)
        async with SippetClient(KEY, base_url=server.url, rate_limit=limit,
                                retry=RetryPolicy(attempts=1)) as client:
            await asyncio.gather(*(client.run("list_calls", fields=["id"]) for _ in range(10)))
            assert limit.round_trips == 0
            fallback = [request.received_at for request in server.requests]
            assert worst_window(fallback, 0.5) <= 11  # paced at 20/s, locally
            await asyncio.to_thread(redis_server.start)
            try:
                for _ in range(200):  # the fallback tries Redis again each second
                    await client.run("list_calls", fields=["id"])
                    if limit.round_trips:
                        break
                assert limit.round_trips > 0
            finally:
                await asyncio.to_thread(redis_server.stop)
    messages = [record.getMessage() for record in caplog.records]
    assert any("falls back to 20/s" in message for message in messages)
    assert any("answers again" in message for message in messages)
    assert all("hunter2" not in message for message in messages)


def test_urls_are_shown_without_passwords() -> None:
    """Only the password is masked; a URL without one is shown as it is."""
    assert shown_url("redis://user:pw@host:6380/2") == "redis://user:***@host:6380/2"
    assert shown_url("redis://:pw@host/0") == "redis://:***@host/0"
    assert shown_url("redis://host:6379/0") == "redis://host:6379/0"


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"rate": 0}, "rate"), ({"rate": 10, "key": ""}, "key"),
    ({"rate": 10, "batch": 0}, "batch"), ({"rate": 10, "fallback_rate": -1}, "fallback_rate"),
])
def test_bad_arguments_are_usage_errors(kwargs: dict[str, object], name: str) -> None:
    """A bad rate, key, batch or fallback rate is a UsageError naming it."""
    from sippet_async import UsageError
    arguments: dict[str, object] = {"key": "acct", **kwargs}
    with pytest.raises(UsageError, match=name):
        RedisRateLimit("redis://127.0.0.1:1/0", **arguments)  # type: ignore[arg-type]
