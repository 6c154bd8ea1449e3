"""Fixtures for the pagination tests: a FakeSippet on 127.0.0.1, a client, loop hygiene."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sippet_async import SippetClient, _iterator
from sippet_async._iterator import TASK_NAME
from sippet_async.testing import FakeSippet

KEY = "sk_test_pagination_suite_0123456789"
SEEDED = 250


@pytest.fixture(autouse=True)
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """Fail the test if asyncio reported anything: a task destroyed while pending, an
    exception never retrieved, an unclosed session (they go to the loop's handler)."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    yield seen
    gc.collect()
    loop.set_exception_handler(None)
    assert [context.get("message") for context in seen] == []


@pytest.fixture(params=["generator", "coroutine"])
def handout(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with each way records are handed out (Python 3.11 uses the generator,
    3.12 on the coroutine), whatever Python runs the suite."""
    kind: str = request.param
    chosen = _iterator._records if kind == "generator" else _iterator._Records
    monkeypatch.setattr(_iterator, "HANDOUT", chosen)
    return kind


@pytest.fixture
async def server() -> AsyncIterator[FakeSippet]:
    """A fake Sippet with SEEDED contacts (max page size 500)."""
    async with FakeSippet(api_key=KEY, seed_contacts=SEEDED) as s:
        yield s


@pytest.fixture
async def client(server: FakeSippet) -> AsyncIterator[SippetClient]:
    """A client bound to ``server``."""
    async with SippetClient(KEY, base_url=server.url) as c:
        yield c


def page_requests(server: FakeSippet, action: str = "list_contacts") -> list[dict[str, Any]]:
    """The ``page`` object of every ``action`` request the server received, in order."""
    return [r.json.get("page", {}) for r in server.requests if r.action == action]


def page_tasks() -> list[asyncio.Task[Any]]:
    """The iterator's page fetches still known to the loop."""
    return [t for t in asyncio.all_tasks() if t.get_name() == TASK_NAME]
