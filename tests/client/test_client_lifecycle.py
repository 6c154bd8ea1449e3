"""Client lifecycle: where the session is made, borrowed sessions, aclose, cancellation."""

from __future__ import annotations

import asyncio
import gc
import logging
import warnings
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import pytest

from sippet_async import ClientClosedError, SippetClient
from sippet_async.testing import FakeSippet

UNCLOSED = ("Unclosed client session", "Unclosed connector")


async def _until_received(server: FakeSippet, count: int = 1) -> None:
    """Yield to the loop until the server has recorded ``count`` requests."""
    async with asyncio.timeout(10):  # a guard against a hang, not a synchronisation
        # The server offers no event to await, so poll between loop iterations.
        while len(server.requests) < count:  # noqa: ASYNC110
            await asyncio.sleep(0)


def _assert_nothing_unclosed(caplog: pytest.LogCaptureFixture) -> None:
    """After a full GC, no ResourceWarning and no "Unclosed ..." report from aiohttp."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    resource = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert resource == [], [str(w.message) for w in resource]
    assert not any(text in caplog.text for text in UNCLOSED), caplog.text


def test_client_built_outside_a_loop_opens_its_session_inside_it(
    api_key: str, unused_port: int
) -> None:
    """Constructing a client needs no running loop; the session is made on first use."""
    client = SippetClient(api_key, base_url=f"http://127.0.0.1:{unused_port}")

    async def use() -> object:
        async with FakeSippet(api_key=api_key, port=unused_port, seed_contacts=2) as server:
            async with client:
                data = await client.run("list_contacts", fields=["id"])
            assert len(server.requests) == 1
        return data

    # In a thread of its own, as a script would: asyncio.run in the test's thread would
    # replace the loop pytest-asyncio before 1.0 keeps set there (see run_cli in conftest).
    with ThreadPoolExecutor(max_workers=1) as pool:
        data = pool.submit(asyncio.run, use()).result()
    assert isinstance(data, dict)
    assert len(data["results"]) == 2
    assert client.closed


async def test_injected_session_is_borrowed_not_closed(server: FakeSippet, api_key: str) -> None:
    """A caller's ClientSession is used for requests and is still open after aclose()."""
    session = aiohttp.ClientSession()
    try:
        async with SippetClient(api_key, base_url=server.url, session=session) as client:
            await client.run("list_contacts", fields=["id"])
        assert client.closed
        assert not session.closed
        assert len(server.requests) == 1
        received = server.requests[0].headers
        assert received["x-api-key"] == api_key
        assert received["content-type"] == "application/json"
        # The key travels per request; it is never left behind in the caller's session.
        assert "x-api-key" not in session.headers
        async with session.post(server.url + "/rpc/public/run", json={"action": "x"}) as resp:
            assert resp.status == 401  # the session still works, and carries no key
    finally:
        await session.close()


async def test_aclose_twice_is_fine_and_later_use_raises(server: FakeSippet, api_key: str) -> None:
    """aclose() is idempotent; run, validate and async-with afterwards raise ClientClosedError."""
    client = SippetClient(api_key, base_url=server.url)
    await client.run("list_contacts", fields=["id"])
    await client.aclose()
    await client.aclose()
    assert client.closed
    with pytest.raises(ClientClosedError):
        await client.run("list_contacts", fields=["id"])
    with pytest.raises(ClientClosedError):
        await client.validate("list_contacts", fields=["id"])
    with pytest.raises(ClientClosedError):
        async with client:
            pass
    assert len(server.requests) == 1


async def test_aclose_without_any_request(api_key: str) -> None:
    """A client that never sent anything closes cleanly (no session was ever opened)."""
    client = SippetClient(api_key, base_url="http://127.0.0.1:9")
    await client.aclose()
    assert client.closed


async def test_owned_session_is_closed(
    server: FakeSippet, api_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    """After aclose() and a GC, nothing reports an unclosed session or connector."""
    caplog.set_level(logging.DEBUG)
    client = SippetClient(api_key, base_url=server.url)
    await client.run("list_contacts", fields=["id"])
    await client.aclose()
    del client
    _assert_nothing_unclosed(caplog)


async def test_cancelled_run_leaves_nothing_open(
    server: FakeSippet, api_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Cancelling an in-flight run frees its slot and leaks no session or connector."""
    caplog.set_level(logging.DEBUG)
    client = SippetClient(api_key, base_url=server.url, max_concurrency=1)
    server.latency = 2.0  # the request is still in flight when it is cancelled
    task = asyncio.create_task(client.run("list_contacts", fields=["id"]))
    await _until_received(server)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The only concurrency slot was released: the next call goes through.
    server.latency = 0.0
    data = await client.run("list_contacts", fields=["id"], page={"limit": 1, "offset": 0})
    assert len(data["results"]) == 1
    await client.aclose()
    del client, task
    _assert_nothing_unclosed(caplog)


async def test_cancelled_while_waiting_for_a_slot(server: FakeSippet, api_key: str) -> None:
    """A call cancelled while queued for a slot never reaches the server."""
    async with SippetClient(api_key, base_url=server.url, max_concurrency=1) as client:
        server.latency = 0.3
        first = asyncio.create_task(client.run("list_contacts", fields=["id"]))
        await _until_received(server)
        queued = asyncio.create_task(client.run("list_calls", fields=["id"]))
        await asyncio.sleep(0)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        await first
        assert [r.action for r in server.requests] == ["list_contacts"]
