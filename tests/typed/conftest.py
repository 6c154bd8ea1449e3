"""Fixtures for the typed methods: a FakeSippet on 127.0.0.1 and a client bound to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

import pytest

from sippet_async import RetryPolicy, SippetClient
from sippet_async.testing import FakeSippet

KEY: Final = "sk_test_typed_methods_0123456789"
SEED_CONTACTS: Final = 25


@pytest.fixture
async def server() -> AsyncIterator[FakeSippet]:
    """A fake Sippet with seeded contacts, on an ephemeral 127.0.0.1 port."""
    async with FakeSippet(api_key=KEY, seed_contacts=SEED_CONTACTS) as s:
        yield s


@pytest.fixture
async def client(server: FakeSippet) -> AsyncIterator[SippetClient]:
    """A client for ``server`` making one attempt per call."""
    async with SippetClient(KEY, base_url=server.url, retry=RetryPolicy(attempts=1)) as c:
        yield c
