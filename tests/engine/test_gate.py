"""The shared pause: a 429 / 503 with Retry-After (or RateLimit-Remaining: 0) holds back
every request of the client; Retry-After above the cap raises RateLimitError."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from sippet_async import Counters, RateLimitError, ServerError
from sippet_async._limits import PauseGate
from sippet_async.testing import FakeSippet, Faults, Reply

from ._support import KEY, FakeSleep, Recorder, client_for, new_call

OK_BODY = msgspec.json.encode({"success": True, "data": []})


async def test_no_request_is_sent_before_retry_after_has_passed_across_all_tasks(
    server: FakeSippet
) -> None:
    """One 429 with Retry-After: 0.3 in a crowd of 40 calls: after it arrives, no task sends
    anything until 0.3 s later (real time: here the timing is the point)."""
    server.latency = 0.01
    server.push_reply(Reply(status=429, headers={"Retry-After": "0.3"}))
    hooks = Recorder()
    async with client_for(server, hooks=hooks, max_concurrency=4) as client:
        await asyncio.gather(*(client.run("list_contacts", fields=["id"]) for _ in range(40)))
        assert client.counters.pauses == 1
        assert client.counters.rate_limited == 1
    (got_429,) = [t for _, _, status, t in hooks.responses if status == 429]
    later = [t for _, _, t in hooks.requests if t >= got_429]
    assert len(later) >= 30  # most calls were still queued behind the pause
    assert min(later) >= got_429 + 0.3
    assert len(server.requests) == 41


async def test_the_pause_is_one_wait_shared_by_every_waiting_task(
    server: FakeSippet, sleep: FakeSleep
) -> None:
    """A pause is counted once, and every task queued behind it waits at the gate."""
    server.push_reply(Reply(status=503, headers={"Retry-After": "5"}))
    async with client_for(server, sleep=sleep, max_concurrency=1) as client:
        await asyncio.gather(*(client.run("list_contacts", fields=["id"]) for _ in range(5)))
        assert client.counters.pauses == 1
    # The 503'd call waits its retry; each other queued call waits at the gate for <= 5 s.
    assert len(sleep.waits) >= 5
    assert all(0 < wait <= 5 for wait in sleep.waits)


async def test_retry_after_above_the_cap_raises_rate_limit_error_at_once(
    server: FakeSippet, sleep: FakeSleep
) -> None:
    """Retry-After: 3600 with a 60 s cap: RateLimitError(retry_after=3600), no sleep, no resend,
    and the next call fails fast without being sent either."""
    server.push_reply(Reply(status=429, headers={"Retry-After": "3600"}))
    async with client_for(server, sleep=sleep, retry_after_cap=60) as client:
        with pytest.raises(RateLimitError) as info:
            await client.run("create_call", input=new_call(1))
        assert info.value.retry_after == 3600
        with pytest.raises(RateLimitError, match="retry_after_cap") as again:
            await client.run("list_contacts", fields=["id"])
    assert again.value.retry_after is not None
    assert 3500 < again.value.retry_after <= 3600
    assert sleep.waits == []
    assert len(server.requests) == 1


async def test_a_503_retry_after_above_the_cap_raises_the_server_error(
    server: FakeSippet, sleep: FakeSleep
) -> None:
    """A maintenance 503 with Retry-After beyond the cap is not slept through."""
    server.push_reply(Reply(status=503, headers={"Retry-After": "600"}))
    async with client_for(server, sleep=sleep, retry_after_cap=30) as client:
        with pytest.raises(ServerError) as info:
            await client.run("list_contacts", fields=["id"])
    assert info.value.retry_after == 600
    assert sleep.waits == []


async def test_ratelimit_remaining_zero_pauses_before_a_429(
    server: FakeSippet, sleep: FakeSleep
) -> None:
    """A 200 saying RateLimit-Remaining: 0, Reset: 2 holds the next request back ~2 s."""
    server.push_reply(Reply(status=200, body=OK_BODY, headers={
        "RateLimit-Limit": "10", "RateLimit-Remaining": "0", "RateLimit-Reset": "2"}))
    async with client_for(server, sleep=sleep) as client:
        await client.run("list_contacts", fields=["id"])
        await client.run("list_contacts", fields=["id"])
        assert client.counters.pauses == 1
        assert client.counters.rate_limited == 0
    assert len(sleep.waits) == 1
    assert 1.5 < sleep.waits[0] <= 2


@pytest.mark.parametrize("headers", [
    {"RateLimit-Remaining": "0", "RateLimit-Reset": "soon"},
    {"RateLimit-Remaining": "-1", "RateLimit-Reset": "2"},
    {"RateLimit-Remaining": "0"},
    {"RateLimit": "remaining=0"},
])
async def test_malformed_rate_limit_hints_are_ignored(
    server: FakeSippet, sleep: FakeSleep, headers: dict[str, str]
) -> None:
    """A hint that does not parse is treated as absent: no pause."""
    server.push_reply(Reply(status=200, body=OK_BODY, headers=headers))
    async with client_for(server, sleep=sleep) as client:
        await client.run("list_contacts", fields=["id"])
        await client.run("list_contacts", fields=["id"])
        assert client.counters.pauses == 0
    assert sleep.waits == []


async def test_retries_pay_for_a_rate_token_too(server: FakeSippet, sleep: FakeSleep) -> None:
    """At rate_limit=1 a retry (with no backoff) still waits its turn: >= 1 s after the first
    attempt on the limiter's clock."""
    server.push_reply(Reply(status=500, body=b"<html></html>"))
    hooks = Recorder()
    async with client_for(server, sleep=sleep, hooks=hooks, rate_limit=1,
                          policy={"initial_wait": 0.0, "max_wait": 0.0}) as client:
        await client.run("list_contacts", fields=["id"])
    (_, first, t1), (_, second, t2) = hooks.requests
    assert (first, second) == (1, 2)
    assert t2 - t1 >= 1.0


async def test_a_client_under_its_rate_limit_is_never_rejected(sleep: FakeSleep) -> None:
    """rate_limit=40 against a server enforcing 50 per rolling second: 60 calls, zero 429s
    (the exact edge is checked on a virtual clock in test_limiter.py)."""
    async with FakeSippet(KEY, faults=Faults(rate_limit=50)) as server:
        async with client_for(server, sleep=sleep, rate_limit=40) as client:
            await asyncio.gather(*(client.run("list_contacts", fields=["id"])
                                   for _ in range(60)))
            assert client.counters.rate_limited == 0
        assert [r.status for r in server.requests] == [200] * 60


async def test_a_429_from_the_servers_window_slows_the_client_down(sleep: FakeSleep) -> None:
    """A client set above the server's limit gets 429s, pauses, retries and still finishes."""
    async with FakeSippet(KEY, faults=Faults(rate_limit=20)) as server, \
            client_for(server, rate_limit=200) as client:
        results = await asyncio.gather(*(client.run("list_contacts", fields=["id"])
                                         for _ in range(30)))
        assert client.counters.rate_limited > 0
        assert client.counters.pauses > 0
    assert len(results) == 30


def test_the_pause_hook_hears_each_pause_that_begins_or_grows() -> None:
    """Retry-After 1, then 3, then 2 (inside the 3): two hook calls, one pause counted."""
    now = [100.0]
    heard: list[tuple[str, int, str, float]] = []
    counters = Counters()

    async def never(seconds: float) -> None:
        raise AssertionError("nothing waits here")

    gate = PauseGate(sleep=never, cap=60.0, counters=counters, clock=lambda: now[0],
                     on_pause=lambda *args: heard.append(args))
    gate.pause(1.0, action="list_contacts", attempt=1, cause="429")
    now[0] += 0.5
    gate.pause(3.0, action="list_contacts", attempt=2, cause="503")
    gate.pause(2.0, action="create_call", attempt=1, cause="hint")
    assert heard == [("list_contacts", 1, "429", 1.0), ("list_contacts", 2, "503", 3.0)]
    assert counters.pauses == 1
    assert gate.until == 103.5
