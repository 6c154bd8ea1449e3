"""Hooks, counters and logs show what the engine did, and never the key."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from sippet_async import (
    ActionNotFoundError,
    CallEndEvent,
    CallStartEvent,
    Counters,
    Hooks,
    Observer,
    OutcomeUnknownError,
    PauseEvent,
    RequestEvent,
    RetryEvent,
    SippetClient,
    UsageError,
)
from sippet_async._hooks import EngineHooks, engine_hooks
from sippet_async.testing import FakeSippet, Reply

from ._support import KEY, FakeSleep, Recorder, client_for, new_call


async def test_hooks_see_each_attempt_retry_and_response(
    server: FakeSippet, sleep: FakeSleep
) -> None:
    """on_request per attempt, on_retry with cause and wait, on_response with the status."""
    server.push_reply(Reply(status=503, headers={"Retry-After": "1.5"}))
    hooks = Recorder()
    assert isinstance(hooks, Hooks)
    async with client_for(server, sleep=sleep, hooks=hooks) as client:
        await client.run("list_contacts", fields=["id"])
    assert [(a, n) for a, n, _ in hooks.requests] == [("list_contacts", 1), ("list_contacts", 2)]
    assert hooks.retries == [("list_contacts", 1, "503", 1.5)]
    assert [(n, status) for _, n, status, _ in hooks.responses] == [(1, 503), (2, 200)]


async def test_counters_add_up(server: FakeSippet, sleep: FakeSleep) -> None:
    """requests, retries by cause, 429s, pauses and unknown outcomes after a scripted mix."""
    for reply in (Reply(status=429, headers={"Retry-After": "1"}), Reply(status=502),
                  Reply(status=500)):
        server.push_reply(reply)
    async with client_for(server, sleep=sleep) as client:
        assert client.counters == Counters()
        await client.run("list_contacts", fields=["id"])  # 429, 502, then 500 -> 4 attempts
        server.push_reply(Reply(reset=True))
        with pytest.raises(OutcomeUnknownError):
            await client.run("create_call", input=new_call(1))
        counters = client.counters
    assert counters.requests == 5
    assert counters.retries == {"429": 1, "502": 1, "500": 1}
    assert counters.total_retries == 3
    assert counters.rate_limited == 1
    assert counters.pauses == 1
    assert counters.unknown_outcomes == 1
    assert counters.budget_refusals == 0


async def test_retries_and_pauses_are_logged_with_action_attempt_cause_and_wait(
    server: FakeSippet, sleep: FakeSleep, caplog: pytest.LogCaptureFixture
) -> None:
    """INFO records name the action, the attempt, the cause and the wait; never the key."""
    server.push_reply(Reply(status=429, headers={"Retry-After": "2"}))
    caplog.set_level(logging.INFO, logger="sippet_async")
    async with client_for(server, sleep=sleep) as client:
        await client.run("list_contacts", fields=["id"])
    messages = [r.getMessage() for r in caplog.records if r.name == "sippet_async"]
    assert "list_contacts: attempt 1 got HTTP 429 with Retry-After; pausing every request " \
           "for 2.000s" in messages
    assert "list_contacts: attempt 1 failed (429); retrying in 2.000s" in messages
    assert KEY not in caplog.text


async def test_a_hook_that_raises_fails_the_call_loudly(server: FakeSippet) -> None:
    """Hooks run inline: an exception in one is not swallowed."""

    class Broken(Recorder):
        def on_request(self, action: str, attempt: int) -> None:
            raise RuntimeError("metrics backend down")

    async with client_for(server, hooks=Broken()) as client:
        with pytest.raises(RuntimeError, match="metrics backend down"):
            await client.run("list_contacts", fields=["id"])


class OnlyPauses(Observer):
    """Listens to pauses and nothing else."""

    def on_pause(self, event: PauseEvent) -> None: ...


def test_without_listeners_the_engine_is_given_nothing_to_call() -> None:
    """hooks=None, or an Observer that overrides nothing per attempt: no per-request calls."""
    assert engine_hooks(None) == EngineHooks()
    assert engine_hooks(Observer()) == EngineHooks()
    only_pauses = engine_hooks(OnlyPauses())
    assert only_pauses.calls is None
    assert only_pauses.on_breaker is None
    assert only_pauses.on_pause is not None


def test_a_hooks_object_reaches_the_engine_unchanged() -> None:
    """The three-method style is not wrapped: the engine calls the user's own object."""
    hooks = Recorder()
    assert engine_hooks(hooks) == EngineHooks(calls=hooks)


@pytest.mark.parametrize("hooks", [object(), Recorder, OnlyPauses, "on_request"])
def test_hooks_of_neither_style_are_a_usage_error(hooks: object) -> None:
    """Not an Observer, not a Hooks instance (a class is not an instance): UsageError."""
    with pytest.raises(UsageError, match="hooks"):
        SippetClient(KEY, hooks=hooks)  # type: ignore[arg-type]


def test_events_are_frozen_and_built_with_keywords() -> None:
    """Events cannot be changed, and a field added later cannot shift positional callers."""
    event = RetryEvent(action="list_contacts", attempt=1, cause="503", wait=1.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.wait = 0.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        RequestEvent("list_contacts", 1)  # type: ignore[misc]


class CallLog(Observer):
    """Keeps the call starts and ends, and each request, in order."""

    def __init__(self) -> None:
        self.seen: list[object] = []

    def on_call_start(self, event: CallStartEvent) -> None:
        self.seen.append(event)

    def on_request(self, event: RequestEvent) -> None:
        self.seen.append(event)

    def on_call_end(self, event: CallEndEvent) -> None:
        self.seen.append(event)


async def test_an_observer_hears_each_call_start_and_end_around_its_attempts(
    server: FakeSippet, sleep: FakeSleep
) -> None:
    """on_call_start, the attempts, then on_call_end with the attempts and no error."""
    server.push_reply(Reply(status=503, headers={"Retry-After": "1"}))
    log = CallLog()
    async with client_for(server, sleep=sleep, hooks=log) as client:
        await client.run("list_contacts", fields=["id"])
    start, first, second, end = log.seen
    assert start == CallStartEvent(action="list_contacts", url=server.url + "/rpc/public/run")
    assert (first, second) == (RequestEvent(action="list_contacts", attempt=1),
                                RequestEvent(action="list_contacts", attempt=2))
    assert isinstance(end, CallEndEvent)
    assert (end.action, end.attempts, end.error) == ("list_contacts", 2, None)
    assert end.duration > 0


async def test_a_failed_call_ends_with_its_error(server: FakeSippet, sleep: FakeSleep) -> None:
    """What the call raised is the end event's error, also with a deadline."""
    log = CallLog()
    async with client_for(server, sleep=sleep, hooks=log, deadline=30.0) as client:
        with pytest.raises(ActionNotFoundError) as raised:
            await client.run("no_such_action")
    end = log.seen[-1]
    assert isinstance(end, CallEndEvent)
    assert end.error is raised.value
    assert end.attempts == 1


def test_call_hooks_are_given_to_the_engine_only_when_overridden() -> None:
    """Without on_call_start / on_call_end, the engine gets no call watch (no wrapper)."""
    assert engine_hooks(OnlyPauses()).watch is None
    assert engine_hooks(Recorder()).watch is None
    assert engine_hooks(CallLog()).watch is not None
