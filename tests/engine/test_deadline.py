"""The per-call deadline covers every attempt and every wait."""

from __future__ import annotations

import asyncio

import pytest

from sippet_async import (
    OutcomeUnknownError,
    ServerError,
    TransportTimeoutError,
    UsageError,
)
from sippet_async.testing import FakeSippet, Reply

from ._support import FakeSleep, Recorder, client_for, new_call


async def test_a_read_past_its_deadline_raises_a_timeout(server: FakeSippet) -> None:
    """A reply slower than the deadline: TransportTimeoutError (also a TimeoutError)."""
    server.latency = 5.0
    async with client_for(server) as client:
        with pytest.raises(TransportTimeoutError) as info:
            await client.run("list_contacts", fields=["id"], deadline=0.2)
    assert isinstance(info.value, TimeoutError)
    assert info.value.sent is True
    assert "deadline of 0.2s" in str(info.value)


async def test_a_write_in_flight_at_its_deadline_has_an_unknown_outcome(
    server: FakeSippet
) -> None:
    """The deadline cut a sent write: OutcomeUnknownError caused by the timeout."""
    server.latency = 5.0
    async with client_for(server) as client:
        with pytest.raises(OutcomeUnknownError) as info:
            await client.run("create_call", input=new_call(1), deadline=0.2)
        assert client.counters.unknown_outcomes == 1
    assert isinstance(info.value.__cause__, TransportTimeoutError)


async def test_the_deadline_stops_retries_instead_of_sleeping_into_it(
    server: FakeSippet, sleep: FakeSleep
) -> None:
    """Retry-After: 5 with 1 s left: raise now (caused by the 503), without waiting."""
    server.push_reply(Reply(status=503, headers={"Retry-After": "5"}))
    async with client_for(server, sleep=sleep) as client:
        with pytest.raises(TransportTimeoutError) as info:
            await client.run("create_call", input=new_call(1), deadline=1.0)
    assert isinstance(info.value.__cause__, ServerError)
    assert info.value.sent is False  # the 503 said "not executed"
    assert sleep.waits == []
    assert len(server.requests) == 1


async def test_a_write_waiting_at_the_pause_gate_times_out_as_not_sent(
    server: FakeSippet
) -> None:
    """A write held back by a pause when its deadline passes was never sent: no
    OutcomeUnknownError, and the server never saw it."""
    server.push_reply(Reply(status=429, headers={"Retry-After": "0.5"}))
    hooks = _On429()
    async with client_for(server, hooks=hooks) as client:
        first = asyncio.create_task(client.run("list_contacts", fields=["id"]))
        await hooks.seen.wait()  # the client has the 429: the pause is on
        with pytest.raises(TransportTimeoutError) as info:
            await client.run("create_call", input=new_call(1), deadline=0.1)
        await first
    assert info.value.sent is False
    assert [r.action for r in server.requests] == ["list_contacts", "list_contacts"]


class _On429(Recorder):
    """Hooks that signal the first 429 reply."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = asyncio.Event()

    def on_response(self, action: str, attempt: int, status: int, elapsed: float) -> None:
        if status == 429:
            self.seen.set()


async def test_the_client_deadline_applies_and_a_call_can_extend_it(server: FakeSippet) -> None:
    """deadline= on the client bounds every call; a per-call deadline replaces it."""
    server.latency = 0.3
    async with client_for(server, deadline=0.1) as client:
        with pytest.raises(TransportTimeoutError):
            await client.run("list_contacts", fields=["id"])
        page = await client.run("list_contacts", fields=["id"], deadline=10.0)
    assert len(page["results"]) == 5


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "1", True])
async def test_bad_deadlines_are_usage_errors(server: FakeSippet, bad: object) -> None:
    """A deadline must be a positive number of seconds (per client and per call)."""
    with pytest.raises(UsageError, match="deadline"):
        client_for(server, deadline=bad)
    async with client_for(server) as client:
        with pytest.raises(UsageError, match="deadline"):
            await client.run("list_contacts", fields=["id"], deadline=bad)  # type: ignore[arg-type]
    assert server.requests == []
