"""Helpers shared by the engine tests: a recording sleep, recording hooks, a client factory."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Final

from sippet_async import RetryPolicy, SippetClient
from sippet_async.testing import FakeSippet

KEY: Final = "sk_test_engine_suite_0123456789"
PHONE: Final = "+1555555{:04d}"


class FakeSleep:
    """Records every wait it is asked for and returns at once (after one loop turn)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


@dataclass
class Recorder:
    """A ``Hooks`` implementation that keeps every event, stamped with the loop's clock."""

    requests: list[tuple[str, int, float]] = field(default_factory=list)
    retries: list[tuple[str, int, str, float]] = field(default_factory=list)
    responses: list[tuple[str, int, int, float]] = field(default_factory=list)

    def on_request(self, action: str, attempt: int) -> None:
        self.requests.append((action, attempt, asyncio.get_running_loop().time()))

    def on_retry(self, action: str, attempt: int, cause: str, wait: float) -> None:
        self.retries.append((action, attempt, cause, wait))

    def on_response(self, action: str, attempt: int, status: int, elapsed: float) -> None:
        self.responses.append((action, attempt, status, asyncio.get_running_loop().time()))


def client_for(server: FakeSippet, *, sleep: FakeSleep | None = None,
               policy: dict[str, Any] | None = None, **options: Any) -> SippetClient:
    """A client for ``server``; retries wait through ``sleep`` (if given)."""
    retry = RetryPolicy(sleep=sleep, **(policy or {}))
    return SippetClient(KEY, base_url=server.url, retry=retry, **options)


def new_call(i: int) -> dict[str, Any]:
    """The input of a distinct create_call (its ``toE164`` identifies it)."""
    return {"toE164": PHONE.format(i)}


def new_contact(i: int) -> dict[str, Any]:
    """The input of a distinct create_contact."""
    return {"fullName": f"Person {i}", "phoneE164": PHONE.format(i)}
