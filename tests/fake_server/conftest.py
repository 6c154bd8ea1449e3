"""Fixtures for the fake server's own tests: a running server and a plain aiohttp session.

These tests speak raw HTTP with aiohttp (never the sippet_async client), so the fake server
is checked against docs/protocol.md on its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import msgspec
import pytest

from sippet_async.testing import FakeSippet

from ._support import API_KEY, SEEDED, Answer, Post, Rpc, Walk


@pytest.fixture
async def server() -> AsyncIterator[FakeSippet]:
    async with FakeSippet(API_KEY, seed_contacts=SEEDED) as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def post(server: FakeSippet, session: aiohttp.ClientSession) -> Post:
    """POST a payload (JSON-encoded unless bytes) to an endpoint; return the raw answer."""

    async def send(
        payload: object,
        *,
        endpoint: str = "run",
        key: str | None = API_KEY,
        headers: Mapping[str, str] | None = None,
        target: FakeSippet | None = None,
    ) -> Answer:
        sent = {"Content-Type": "application/json", **(headers or {})}
        if key is not None:
            sent["x-api-key"] = key
        body = payload if isinstance(payload, bytes) else msgspec.json.encode(payload)
        url = f"{(target or server).url}/rpc/public/{endpoint}"
        async with session.post(url, data=body, headers=sent, allow_redirects=False) as reply:
            return Answer(reply.status, dict(reply.headers), await reply.read())

    return send


@pytest.fixture
def rpc(post: Post) -> Rpc:
    """POST a payload and return the decoded envelope, asserting HTTP 200."""

    async def call(payload: object, **options: Any) -> dict[str, Any]:
        answer = await post(payload, **options)
        assert answer.status == 200, answer
        envelope = answer.json()
        assert isinstance(envelope, dict)
        return envelope

    return call


@pytest.fixture
def walk(rpc: Rpc) -> Walk:
    """Follow ``nextPage`` from the first keyset page while ``hasMore``; return every result."""

    async def follow(payload: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        page: dict[str, Any] = {"limit": limit}
        while True:
            data = (await rpc({**payload, "page": page}))["data"]
            seen.extend(data["results"])
            if not data["hasMore"]:
                return seen
            page = {"limit": limit, "after": data["nextPage"]}

    return follow
