"""The client-wide retry budget: an outage does not multiply the load; 18% failures still
get their retries."""

from __future__ import annotations

import asyncio
import contextlib

from sippet_async import ServerError
from sippet_async._retry import DEFAULT_BUDGET
from sippet_async.testing import FakeSippet, Faults

from ._support import FakeSleep, client_for

OUTAGE = Faults(p_500=1.0)


async def _calls(client: object, n: int) -> list[object]:
    return await asyncio.gather(
        *(client.run("list_contacts", fields=["id"]) for _ in range(n)),  # type: ignore[attr-defined]
        return_exceptions=True,
    )


async def test_a_total_outage_costs_about_one_request_per_call(
    server: FakeSippet, sleep: FakeSleep
) -> None:
    """100% HTTP 500: 200 calls send 200 + budget requests, not 4 x 200."""
    server.faults = OUTAGE
    async with client_for(server, sleep=sleep) as client:
        outcomes = await _calls(client, 200)
        refusals = client.counters.budget_refusals
    assert all(isinstance(o, ServerError) for o in outcomes)
    assert len(server.requests) <= 200 + DEFAULT_BUDGET
    assert len(server.requests) / 200 <= 1.25
    assert refusals >= 150


async def test_without_the_budget_the_same_outage_would_quadruple_the_load(
    server: FakeSippet, sleep: FakeSleep
) -> None:
    """Contrast: with an effectively unlimited budget every call makes all 4 attempts."""
    server.faults = OUTAGE
    async with client_for(server, sleep=sleep, policy={"budget": 10_000}) as client:
        await _calls(client, 100)
        assert client.counters.budget_refusals == 0
    assert len(server.requests) == 400


async def test_a_steady_18_percent_failure_rate_still_gets_its_retries(
    server: FakeSippet, sleep: FakeSleep
) -> None:
    """18% HTTP 500 over 1,000 reads: every call succeeds and no retry is refused."""
    server.faults = Faults(p_500=0.18)
    async with client_for(server, sleep=sleep, policy={"attempts": 6}) as client:
        outcomes = await _calls(client, 1000)
        counters = client.counters
        assert counters.budget_refusals == 0
        assert 150 < counters.total_retries == len(server.requests) - 1000
    assert not [o for o in outcomes if isinstance(o, BaseException)]


async def test_the_budget_refills_once_the_server_recovers(
    server: FakeSippet, sleep: FakeSleep
) -> None:
    """After an outage drains the budget, successes refill it and retries resume."""
    server.faults = OUTAGE
    async with client_for(server, sleep=sleep, policy={"budget": 4}) as client:
        await _calls(client, 20)
        server.faults = None
        for _ in range(10):  # 10 successes x 0.5 tokens
            await client.run("list_contacts", fields=["id"])
        server.faults = Faults(p_500=1.0, only_actions=frozenset({"get_contact"}))
        before = len(server.requests)
        await _calls_get(client)
        assert len(server.requests) - before == 4  # 1 attempt + 3 retries: tokens came back


async def _calls_get(client: object) -> None:
    with contextlib.suppress(ServerError):
        await client.run("get_contact", input={"id": "x"}, fields=["id"])  # type: ignore[attr-defined]
