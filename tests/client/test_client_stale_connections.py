"""Write safety at the transport seam: a request that provably never left is sent again.

A server closes idle keep-alive connections; when the client's loop is busy past that
moment, its pool still holds the dead connections. After such a stall the transport lets
the loop read the closes before it takes a connection, so no write goes out on one. Behind
that, a write aiohttp refused on a closing connection never left, so it is sent once more
on a new connection instead of ending "outcome unknown" (docs/protocol.md §12.5). A write
that did leave stays unknown.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest

from sippet_async import OutcomeUnknownError, RetryPolicy, SippetClient, TransportError
from sippet_async.testing import FakeSippet, RecordedRequest, Reply

POOL = 32
IDLE_TIMEOUT = 1.0  # seconds the server keeps an idle connection (the pool fills well within it)

# Without the stall check, aiohttp refuses the write on a closing connection before 3.12;
# from 3.12 it writes eagerly, before the loop has read the server's close, and the bytes
# leave: there is no refused write to re-send (the outcome is unknown, as it must be).
REFUSES_WRITES = pytest.mark.skipif(
    sys.version_info >= (3, 12),
    reason="aiohttp writes eagerly on Python >= 3.12, before the loop sees the close",
)


@pytest.fixture
def no_stall_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Turn off the transport's stall check, to reach the re-send that backs it up."""
    monkeypatch.setattr("sippet_async._transport.STALL_GAP", math.inf)


class ServerThread:
    """A FakeSippet on its own loop in a thread, so it keeps running while ours is blocked."""

    def __init__(self, key: str, **options: Any) -> None:
        self._key = key
        self._options = options
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._server: FakeSippet | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with FakeSippet(self._key, **self._options) as server:
            self._server = server
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> FakeSippet:
        self._thread.start()
        assert self._ready.wait(10), "the server thread did not start"
        assert self._server is not None
        return self._server

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture
def idle_closing_server(api_key: str) -> Iterator[FakeSippet]:
    """A fake Sippet in another thread that closes connections idle for IDLE_TIMEOUT."""
    with ServerThread(api_key, keepalive_timeout=IDLE_TIMEOUT) as server:
        yield server


def block_loop_until(condition: Callable[[], bool], limit: float = 10.0) -> None:
    """Keep the calling event loop busy (no callbacks run) until ``condition`` holds."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "condition not reached while the loop was busy"
        time.sleep(0.005)  # the loop stays blocked: this is the busy callback, not a wait


async def fill_pool(client: SippetClient, server: FakeSippet) -> None:
    """Open POOL keep-alive connections (POOL reads at once on an empty pool), then let the
    server close them all while this loop is too busy to notice."""
    await asyncio.gather(*(client.run("list_contacts", fields=["id"]) for _ in range(POOL)))
    assert server.open_connections == POOL
    block_loop_until(lambda: server.open_connections == 0)


def creates(requests: list[RecordedRequest]) -> list[str]:
    """The fullName of every create_contact the server executed."""
    return [r.json["input"]["fullName"] for r in requests
            if r.action == "create_contact" and r.executed]


def create(client: SippetClient, name: str) -> Awaitable[Any]:
    return client.run("create_contact", input={"fullName": name, "phoneE164": "+15555550100"},
                      fields=["id"])


def resent(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "before the request was written" in r.getMessage()]


async def writes_after_the_server_closed_the_pool(server: FakeSippet, api_key: str) -> None:
    """Fill the pool, let the server close every connection while the loop is stalled,
    then send POOL writes at once: none fails, none is unknown, each executes once."""
    async with SippetClient(api_key, base_url=server.url, max_concurrency=POOL,
                            retry=RetryPolicy(attempts=1)) as client:
        await fill_pool(client, server)
        names = [f"Stale {i}" for i in range(POOL)]
        results = await asyncio.gather(*(create(client, name) for name in names),
                                       return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert client.counters.unknown_outcomes == 0
    assert sorted(creates(server.requests)) == sorted(names)  # each exactly once


async def writes_on_a_borrowed_session(server: FakeSippet, api_key: str
                                       ) -> tuple[list[object], int]:
    """Through a session the caller lends: fill its pool, stall while the server closes it,
    send POOL writes at once. Their results, and the client's unknown outcomes."""
    async with (aiohttp.ClientSession() as session,
                SippetClient(api_key, base_url=server.url, session=session,
                             max_concurrency=POOL, retry=RetryPolicy(attempts=1)) as client):
        await fill_pool(client, server)
        results = await asyncio.gather(*(create(client, f"B {i}") for i in range(POOL)),
                                       return_exceptions=True)
        return list(results), client.counters.unknown_outcomes


async def test_writes_after_a_stall_never_meet_a_connection_the_server_closed(
    idle_closing_server: FakeSippet, api_key: str, caplog: pytest.LogCaptureFixture,
) -> None:
    """32 writes after the server closed all 32 pooled connections during a stall: the
    stall check lets the pool see the closes first, so no write needs re-sending, none is
    unknown, and each executes once."""
    caplog.set_level(logging.INFO, logger="sippet_async")
    await writes_after_the_server_closed_the_pool(idle_closing_server, api_key)
    assert resent(caplog) == []  # no write met a closing connection


async def test_a_write_in_the_step_that_ended_the_stall_never_meets_a_closed_connection(
    idle_closing_server: FakeSippet, api_key: str, caplog: pytest.LogCaptureFixture,
) -> None:
    """The coroutine that stalled the loop sends at once, in the same step: it too waits
    for the loop to read the closes before taking a connection."""
    server = idle_closing_server
    caplog.set_level(logging.INFO, logger="sippet_async")
    async with SippetClient(api_key, base_url=server.url, max_concurrency=POOL,
                            retry=RetryPolicy(attempts=1)) as client:
        await fill_pool(client, server)
        await create(client, "Right after")
        assert client.counters.unknown_outcomes == 0
    assert creates(server.requests) == ["Right after"]
    assert resent(caplog) == []


async def test_a_borrowed_session_also_gets_the_stall_check(
    idle_closing_server: FakeSippet, api_key: str,
) -> None:
    """The check runs before the session is used: a borrowed pool sheds its closed
    connections too, and every write after the stall succeeds."""
    server = idle_closing_server
    results, _ = await writes_on_a_borrowed_session(server, api_key)
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert len(creates(server.requests)) == POOL


@REFUSES_WRITES
@pytest.mark.usefixtures("no_stall_check")
async def test_writes_refused_on_closing_connections_are_sent_again_exactly_once(
    idle_closing_server: FakeSippet, api_key: str, caplog: pytest.LogCaptureFixture,
) -> None:
    """Behind the stall check (a stall shorter than STALL_GAP): writes aiohttp refused on
    closing pooled connections are re-sent once on new ones; 0 unknown, each executed once."""
    caplog.set_level(logging.INFO, logger="sippet_async")
    await writes_after_the_server_closed_the_pool(idle_closing_server, api_key)
    assert resent(caplog), "the scenario did not meet a stale pooled connection"


@REFUSES_WRITES
@pytest.mark.usefixtures("no_stall_check")
async def test_a_borrowed_session_reports_a_refused_write_as_not_sent(
    idle_closing_server: FakeSippet, api_key: str,
) -> None:
    """Without a session of its own the client does not re-send a refused write, but nor
    does it call it unknown: the failure is a TransportError with sent=False."""
    server = idle_closing_server
    results, unknown = await writes_on_a_borrowed_session(server, api_key)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures, "the scenario did not meet a stale pooled connection"
    assert all(isinstance(f, TransportError) and f.sent is False for f in failures)
    assert unknown == 0
    assert len(creates(server.requests)) == POOL - len(failures)


async def test_a_write_that_left_and_was_reset_stays_unknown(
    server: FakeSippet, api_key: str,
) -> None:
    """The server read and executed the write, then dropped the connection: the outcome is
    unknown, and the write is not sent again."""
    server.push_reply(Reply(reset=True, execute=True))
    async with SippetClient(api_key, base_url=server.url) as client:  # default retries
        with pytest.raises(OutcomeUnknownError) as caught:
            await client.run("create_contact",
                             input={"fullName": "Once", "phoneE164": "+15555550100"})
    cause = caught.value.__cause__
    assert isinstance(cause, TransportError)
    assert cause.sent is True
    assert len(server.requests) == 1
    assert creates(server.requests) == ["Once"]
