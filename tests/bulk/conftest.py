"""Fixtures for the bulk tests: a FakeSippet on 127.0.0.1 and a client whose retries never wait."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sippet_async import SippetClient
from sippet_async.testing import FakeSippet

from ._support import KEY, client_for


@pytest.fixture
async def server() -> AsyncIterator[FakeSippet]:
    """A fake Sippet with no records, on an ephemeral port."""
    async with FakeSippet(KEY, seed=5) as fake:
        yield fake


@pytest.fixture
async def client(server: FakeSippet) -> AsyncIterator[SippetClient]:
    """A client for ``server`` whose retries and pauses return at once."""
    async with client_for(server) as c:
        yield c


@pytest.fixture
async def fast_loop() -> None:
    """Turn asyncio's debug mode off for a test that makes thousands of requests.

    PYTHONDEVMODE makes every callback record where it came from (~6x slower here); the
    resource and never-awaited checks the suite relies on stay on without it.
    """
    asyncio.get_running_loop().set_debug(False)
