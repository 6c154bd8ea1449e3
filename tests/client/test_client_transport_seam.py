"""The transport seam: what a Transport is handed, and the headers that reach the server."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from sippet_async import RateLimitError, RetryPolicy, SippetClient
from sippet_async._protocol import HttpRequest, HttpResponse
from sippet_async.testing import FakeSippet

REPLY = b'{"success":true,"data":{"id":"c1"}}'


class Recording:
    """A custom Transport (the public protocol): keeps each request, answers from a list."""

    def __init__(self, *replies: HttpResponse) -> None:
        self.requests: list[HttpRequest] = []
        self._replies = list(replies)

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        return self._replies.pop(0)

    async def aclose(self) -> None:
        return None


def _reply(status: int = 200, body: bytes = REPLY, **headers: str) -> HttpResponse:
    return HttpResponse(status, CIMultiDictProxy(CIMultiDict(headers)), body)


async def test_a_transport_gets_the_fixed_headers_and_the_key_apart(api_key: str) -> None:
    """Every request carries the client's fixed headers; Idempotency-Key comes as the
    request's own extra_headers, and only when given."""
    transport = Recording(_reply(), _reply())
    async with SippetClient(api_key, base_url="http://sippet.test", transport=transport) as client:
        await client.run("create_call", input={"toE164": "+15555550100"}, idempotency_key="k-1")
        await client.run("get_contact", input={"id": "c1"})
    first, second = transport.requests
    assert first.headers == second.headers
    assert first.headers["x-api-key"] == api_key
    assert first.headers["content-type"] == "application/json"
    assert dict(first.extra_headers) == {"Idempotency-Key": "k-1"}
    assert dict(second.extra_headers) == {}
    assert api_key not in repr(first)


async def test_reply_header_names_are_read_in_any_case(api_key: str) -> None:
    """A custom transport's reply headers are looked up case-insensitively (the Transport
    contract): RATELIMIT-REMAINING: 0 pauses the client, a lower-case retry-after is kept."""
    transport = Recording(_reply(**{"RATELIMIT-REMAINING": "0", "RateLimit-Reset": "2"}),
                          _reply(429, b"", **{"retry-after": "7"}))
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async with SippetClient(api_key, base_url="http://sippet.test", transport=transport,
                            retry=RetryPolicy(attempts=1, sleep=sleep),
                            retry_after_cap=5.0) as client:
        await client.run("get_contact", input={"id": "c1"})
        assert client.counters.pauses == 1
        with pytest.raises(RateLimitError) as info:  # after the pause, a 429
            await client.run("get_contact", input={"id": "c1"})
    assert len(waits) == 1
    assert 0 < waits[0] <= 2.0
    assert info.value.retry_after == 7.0


async def test_a_borrowed_session_sends_every_header_with_each_request(
    server: FakeSippet, api_key: str
) -> None:
    """A borrowed session holds none of the client's headers: the key, the content type and
    the idempotency key all travel with the request, and the session is left untouched."""
    async with aiohttp.ClientSession() as session:
        async with SippetClient(api_key, base_url=server.url, session=session) as client:
            await client.run("create_call", input={"toE164": "+15555550101"},
                             idempotency_key="k-2")
        assert "x-api-key" not in session.headers
    received: Any = server.requests[0].headers
    assert received["x-api-key"] == api_key
    assert received["content-type"] == "application/json"
    assert received["idempotency-key"] == "k-2"
