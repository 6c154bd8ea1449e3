"""The seams for later features: a custom RateLimiter and an event Observer plug into a client.

Both are written here from their public protocols alone, and run against the fake server over
real 127.0.0.1 HTTP. Retry waits and the shared pause go through a recording sleep, so
nothing here waits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

import msgspec
import pytest

from sippet_async import (
    BreakerEvent,
    Observer,
    PauseEvent,
    Pushback,
    RateLimiter,
    RequestEvent,
    ResponseEvent,
    RetryEvent,
    RetryPolicy,
    SippetClient,
)
from sippet_async._protocol import HttpRequest, HttpResponse
from sippet_async.testing import FakeSippet, Reply

from ._support import KEY, FakeSleep

ACTION: Final = "list_contacts"
OK_BODY: Final = msgspec.json.encode({"success": True, "data": []})
# Exact waits: backoff ceilings without jitter, 0.5 s after the first failure, then 1 s.
EXACT: Final = {"initial_wait": 0.5, "jitter": 0.0}

Event = RequestEvent | RetryEvent | ResponseEvent | PauseEvent | BreakerEvent


class Ledger:
    """A ``RateLimiter`` that grants every token at once and writes down each call."""

    def __init__(self) -> None:
        self.calls: list[str | Pushback] = []

    async def acquire(self) -> None:
        self.calls.append("acquire")

    def succeeded(self) -> None:
        self.calls.append("succeeded")

    def pushback(self, pushback: Pushback) -> None:
        self.calls.append(pushback)

    async def aclose(self) -> None:
        self.calls.append("aclose")


class Events(Observer):
    """An ``Observer`` that keeps every event it is given."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_request(self, event: RequestEvent) -> None:
        self.events.append(event)

    def on_retry(self, event: RetryEvent) -> None:
        self.events.append(event)

    def on_response(self, event: ResponseEvent) -> None:
        self.events.append(event)

    def on_pause(self, event: PauseEvent) -> None:
        self.events.append(event)

    def on_breaker(self, event: BreakerEvent) -> None:
        self.events.append(event)


@pytest.fixture
def sleep() -> FakeSleep:
    """The retry and pause sleep: records each wait, returns at once."""
    return FakeSleep()


@pytest.fixture
async def plugged(server: FakeSippet,
                  sleep: FakeSleep) -> AsyncIterator[tuple[SippetClient, Ledger, Events]]:
    """A client with a ``Ledger`` as its rate limiter and ``Events`` as its hooks."""
    limiter, events = Ledger(), Events()
    async with SippetClient(KEY, base_url=server.url, rate_limit=limiter, hooks=events,
                            retry=RetryPolicy(sleep=sleep, **EXACT)) as client:
        yield client, limiter, events


def _durations(events: list[Event]) -> list[float]:
    """Each ResponseEvent's duration, checked to be a plausible float, then zeroed out."""
    found = []
    for i, event in enumerate(events):
        if isinstance(event, ResponseEvent):
            assert isinstance(event.duration, float)
            assert 0.0 <= event.duration < 30.0
            found.append(event.duration)
            events[i] = ResponseEvent(action=event.action, attempt=event.attempt,
                                      status=event.status, duration=0.0)
    return found


async def test_a_custom_limiter_and_observer_see_a_retried_and_paused_call(
    server: FakeSippet, sleep: FakeSleep
) -> None:
    """500, then 429 with Retry-After: 2, then 200: a token per attempt, the 429 as pushback,
    the other replies as successes, aclose once on close; events in order with their fields."""
    server.push_reply(Reply(status=500, body=b"<html></html>"))
    server.push_reply(Reply(status=429, headers={"Retry-After": "2"}))
    limiter, events = Ledger(), Events()
    assert isinstance(limiter, RateLimiter)
    client = SippetClient(KEY, base_url=server.url, rate_limit=limiter, hooks=events,
                          retry=RetryPolicy(sleep=sleep, **EXACT))
    async with client:
        assert await client.run(ACTION, fields=["id"]) is not None
        assert "aclose" not in limiter.calls
    await client.aclose()  # a second close closes nothing twice

    assert limiter.calls == [
        "acquire", "succeeded",  # a 500 is no pushback: the rate was not the trouble
        "acquire", Pushback(status=429, retry_after=2.0),
        "acquire", "succeeded",
        "aclose",
    ]
    assert limiter.calls.count("acquire") == len(server.requests) == 3
    assert len(_durations(events.events)) == 3
    assert events.events == [
        RequestEvent(action=ACTION, attempt=1),
        ResponseEvent(action=ACTION, attempt=1, status=500, duration=0.0),
        RetryEvent(action=ACTION, attempt=1, cause="500", wait=0.5),
        RequestEvent(action=ACTION, attempt=2),
        ResponseEvent(action=ACTION, attempt=2, status=429, duration=0.0),
        PauseEvent(action=ACTION, attempt=2, cause="429", wait=2.0),
        RetryEvent(action=ACTION, attempt=2, cause="429", wait=2.0),
        RequestEvent(action=ACTION, attempt=3),
        ResponseEvent(action=ACTION, attempt=3, status=200, duration=0.0),
    ]
    assert sleep.waits[:2] == [0.5, 2.0]  # then what is left of the pause, at the gate
    assert client.counters.pauses == 1


async def test_rate_limit_hints_reach_the_limiter_and_an_exhausted_window_pauses(
    server: FakeSippet, plugged: tuple[SippetClient, Ledger, Events]
) -> None:
    """A 200 with RateLimit hints is a success and a pushback; Remaining: 0 also pauses
    every request until the reset (cause "hint")."""
    client, limiter, events = plugged
    server.push_reply(Reply(status=200, body=OK_BODY,
                            headers={"RateLimit-Remaining": "5", "RateLimit-Reset": "2"}))
    server.push_reply(Reply(status=200, body=OK_BODY, headers={
        "RateLimit-Limit": "100", "RateLimit-Remaining": "0", "RateLimit-Reset": "1.5"}))
    await client.run(ACTION, fields=["id"])
    await client.run(ACTION, fields=["id"])

    assert limiter.calls == [
        "acquire", "succeeded", Pushback(status=200, remaining=5, reset=2.0),
        "acquire", "succeeded", Pushback(status=200, remaining=0, reset=1.5, limit=100),
    ]
    assert not limiter.calls[2].throttled  # type: ignore[union-attr]
    pauses = [event for event in events.events if isinstance(event, PauseEvent)]
    assert pauses == [PauseEvent(action=ACTION, attempt=1, cause="hint", wait=1.5)]


async def test_breaker_changes_arrive_as_events(
    server: FakeSippet, plugged: tuple[SippetClient, Ledger, Events]
) -> None:
    """A reset (no answer) makes the breaker suspect; the retry's answer closes it."""
    client, _, events = plugged
    server.push_reply(Reply(reset=True))
    await client.run(ACTION, fields=["id"])
    changes = [event for event in events.events if isinstance(event, BreakerEvent)]
    assert [event.state for event in changes][:1] == ["suspect"]
    assert changes[-1].state == "closed"
    assert all(isinstance(event.wait, float) for event in changes)
    retries = [event for event in events.events if isinstance(event, RetryEvent)]
    assert [(event.attempt, event.cause) for event in retries] == [(1, "transport")]


class BrokenClose:
    """A ``Transport`` that answers nothing and fails to close."""

    async def send(self, request: HttpRequest) -> HttpResponse:
        raise AssertionError("nothing is sent in this test")

    async def aclose(self) -> None:
        raise RuntimeError("transport close failed")


async def test_the_limiter_is_closed_even_when_the_transport_fails_to_close() -> None:
    """client.aclose() closes the limiter after the transport, whatever the transport did."""
    limiter = Ledger()
    client = SippetClient(KEY, base_url="http://127.0.0.1:9", transport=BrokenClose(),
                          rate_limit=limiter)
    with pytest.raises(RuntimeError, match="transport close failed"):
        await client.aclose()
    assert limiter.calls == ["aclose"]
