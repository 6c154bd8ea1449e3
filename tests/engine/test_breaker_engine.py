"""The breaker inside the request engine, over real 127.0.0.1 HTTP: a dead server gets a
few attempts instead of one per call, and the first answer of any status closes it.

Retries wait through the recording FakeSleep, so nothing here waits for a retry; the
breaker's own probe waits are set short and run on the loop's timers.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from sippet_async import (
    BreakerPolicy,
    Hooks,
    RetryPolicy,
    ServerUnreachableError,
    SippetClient,
    TransportError,
)
from sippet_async.testing import FakeSippet, Reply

from ._support import KEY, FakeSleep, Recorder, client_for, new_contact

QUICK = BreakerPolicy(threshold=3, probe_wait=0.01, max_probe_wait=0.05)


@dataclass
class BreakerRecorder(Recorder):
    """Recorder plus the optional ``on_breaker`` hook."""

    changes: list[str] = field(default_factory=list)

    def on_breaker(self, state: str, wait: float) -> None:
        self.changes.append(state)


def unused_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def first_attempts(hooks: Recorder) -> int:
    return sum(1 for _, attempt, _ in hooks.requests if attempt == 1)


async def _calls(client: SippetClient, n: int) -> Sequence[object]:
    return await asyncio.gather(
        *(client.run("create_contact", input=new_contact(i), fields=["id"]) for i in range(n)),
        return_exceptions=True)


async def test_a_dead_server_gets_a_few_attempts_not_four_per_call(sleep: FakeSleep) -> None:
    """200 writes to a refused port: about one attempt per concurrency slot plus the probes
    (without the breaker: 4 per call, 800); every call fails unsent, none hangs."""
    hooks = Recorder()  # the three-method Hooks only: no on_breaker, still fine
    assert isinstance(hooks, Hooks)
    async with SippetClient(KEY, base_url=f"http://127.0.0.1:{unused_port()}",
                            max_concurrency=8, hooks=hooks, breaker=QUICK,
                            retry=RetryPolicy(sleep=sleep)) as client:
        outcomes = await _calls(client, 200)
        counters = client.counters
    assert all(isinstance(o, TransportError) and not o.sent for o in outcomes), outcomes[:3]
    assert any(isinstance(o, ServerUnreachableError) for o in outcomes)
    sent = len(hooks.requests)
    assert sent == counters.requests
    assert sent <= 8 + counters.probes, (sent, counters)
    assert counters.breaker_openings >= 1
    assert counters.short_circuited > 0
    # Every attempt sent is a first attempt or a counted retry: held-back retries are not.
    assert first_attempts(hooks) + counters.total_retries == counters.requests


async def test_the_first_answer_closes_it_and_full_speed_resumes(sleep: FakeSleep) -> None:
    """Down, then the server starts: the next probe gets an answer, the breaker closes,
    and every call after it goes straight out."""
    port = unused_port()
    hooks = BreakerRecorder()
    async with SippetClient(KEY, base_url=f"http://127.0.0.1:{port}", hooks=hooks,
                            breaker=QUICK, retry=RetryPolicy(sleep=sleep)) as client:
        with pytest.raises(TransportError):
            await client.run("list_contacts", fields=["id"])
        assert client.counters.breaker == "open"
        async with FakeSippet(KEY, port=port, seed_contacts=3):
            assert await client.wait_reachable(patience=60.0)
            await client.run("list_contacts", fields=["id"])  # the probe
            assert client.counters.breaker == "closed"
            sent_before = len(hooks.requests)
            pages = await asyncio.gather(*(client.run("list_contacts", fields=["id"])
                                           for _ in range(20)))
        counters = client.counters
    assert all(len(page["results"]) == 3 for page in pages)
    assert len(hooks.requests) - sent_before == 20  # no call was held back or retried
    assert hooks.changes[-2:] == ["probing", "closed"]
    assert "open" in hooks.changes
    assert (counters.breaker, counters.breaker_openings) == ("closed", 1)


@pytest.mark.parametrize("status", [503, 404])
async def test_any_http_status_closes_it(server: FakeSippet, sleep: FakeSleep,
                                         status: int) -> None:
    """The probe's reply is an error status: still an answer, so the breaker closes."""
    hooks = BreakerRecorder()
    async with client_for(server, sleep=sleep, hooks=hooks, breaker=QUICK) as client:
        breaker = client._breaker
        for _ in range(3):  # three refusals, as the engine reports them
            breaker.unanswered(TransportError("connection failed", sent=False))
        assert client.counters.breaker == "open"
        assert await client.wait_reachable(patience=60.0)
        server.push_reply(Reply(status=status, body=b"<html>busy</html>"))
        with pytest.raises(Exception) as info:  # noqa: PT011 - the status decides the class
            await client.run("create_contact", input=new_contact(1), fields=["id"],
                             idempotent=False)
        assert not isinstance(info.value, TransportError)
        assert client.counters.breaker == "closed"
    assert hooks.changes[-2:] == ["probing", "closed"]


async def test_a_reset_sends_the_next_attempt_alone_until_something_answers(
    server: FakeSippet, sleep: FakeSleep
) -> None:
    """One reset (no answer): the breaker is suspect; the answer to the scout closes it,
    and no call fails because of it."""
    hooks = BreakerRecorder()
    async with client_for(server, sleep=sleep, hooks=hooks) as client:
        server.push_reply(Reply(reset=True))
        pages = await asyncio.gather(*(client.run("list_contacts", fields=["id"])
                                       for _ in range(10)))
        counters = client.counters
    assert len(pages) == 10
    assert hooks.changes[:1] == ["suspect"]
    assert hooks.changes[-1] == "closed"
    assert (counters.breaker_openings, counters.short_circuited) == (0, 0)


async def test_breaker_none_sends_every_attempt(sleep: FakeSleep) -> None:
    """breaker=None: a dead server gets every attempt of every call, as before."""
    hooks = Recorder()
    async with SippetClient(KEY, base_url=f"http://127.0.0.1:{unused_port()}",
                            max_concurrency=8, hooks=hooks, breaker=None,
                            retry=RetryPolicy(sleep=sleep)) as client:
        outcomes = await _calls(client, 20)
        counters = client.counters
    assert not any(isinstance(o, ServerUnreachableError) for o in outcomes)
    assert len(hooks.requests) == counters.requests > 20
    assert counters.breaker == "closed"
