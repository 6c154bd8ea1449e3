"""The per-attempt ``total`` timeout: a slow attempt times out, a cancel from outside stays
a cancel, and the task that ran the attempt is left as it was."""

from __future__ import annotations

import asyncio

import pytest

from sippet_async import OutcomeUnknownError, Timeouts, TransportTimeoutError
from sippet_async.testing import FakeSippet

from ._support import Recorder, client_for, new_call

ONE_ATTEMPT = {"attempts": 1}


class _Sent(Recorder):
    """Hooks that signal the first request handed to the transport."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = asyncio.Event()

    def on_request(self, action: str, attempt: int) -> None:
        super().on_request(action, attempt)
        self.sent.set()


async def test_an_attempt_past_its_total_times_out_and_the_task_goes_on(
    server: FakeSippet
) -> None:
    """A reply slower than ``total``: TransportTimeoutError; the timer's cancel request is
    taken back, so the same task carries on (and a later asyncio timeout still works)."""
    server.latency = 5.0
    async with client_for(server, timeout=Timeouts(total=0.2), policy=ONE_ATTEMPT) as client:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TransportTimeoutError) as info:
            await client.run("list_contacts", fields=["id"])
        waited = loop.time() - started
        task = asyncio.current_task()
        assert task is not None
        assert task.cancelling() == 0
        server.latency = 0.0
        page = await client.run("list_contacts", fields=["id"])
    assert info.value.sent is True
    assert "attempt timed out after 0.2s" in str(info.value)
    assert 0.2 <= waited < 5.0
    assert len(page["results"]) == 5


async def test_a_write_past_its_total_has_an_unknown_outcome(server: FakeSippet) -> None:
    """A write cut by its attempt timeout may have executed: OutcomeUnknownError, not re-sent."""
    server.latency = 5.0
    async with client_for(server, timeout=Timeouts(total=0.2)) as client:
        with pytest.raises(OutcomeUnknownError) as info:
            await client.run("create_call", input=new_call(1))
    assert isinstance(info.value.__cause__, TransportTimeoutError)
    assert len(server.requests) == 1


async def test_every_attempt_in_flight_gets_its_own_timeout(server: FakeSippet) -> None:
    """Concurrent slow attempts all time out; none is left waiting on the server."""
    server.latency = 5.0
    async with client_for(server, timeout=Timeouts(total=0.2), policy=ONE_ATTEMPT) as client:
        outcomes = await asyncio.gather(
            *(client.run("list_contacts", fields=["id"]) for _ in range(10)),
            return_exceptions=True,
        )
    assert all(isinstance(outcome, TransportTimeoutError) for outcome in outcomes), outcomes


async def test_a_cancel_from_outside_stays_a_cancel(server: FakeSippet) -> None:
    """Cancelling the caller mid-attempt raises CancelledError, not a timeout."""
    server.latency = 5.0
    hooks = _Sent()
    async with client_for(server, timeout=Timeouts(total=10.0), hooks=hooks) as client:
        call = asyncio.create_task(client.run("list_contacts", fields=["id"]))
        await hooks.sent.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    assert call.cancelled()
