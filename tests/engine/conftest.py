"""Fixtures for the request-engine tests: a FakeSippet on 127.0.0.1 and a sleep that never waits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sippet_async.testing import FakeSippet

from ._support import KEY, FakeSleep


@pytest.fixture
async def server() -> AsyncIterator[FakeSippet]:
    """A fake Sippet with a few contacts, on an ephemeral port."""
    async with FakeSippet(KEY, seed_contacts=5) as fake:
        yield fake


@pytest.fixture
def sleep() -> FakeSleep:
    """A retry/pause sleep that records each wait and returns at once."""
    return FakeSleep()
