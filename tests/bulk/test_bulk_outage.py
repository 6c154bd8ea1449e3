"""A bulk job through a server crash: a few probes while it is down, nothing failed after.

The outage is driven by events, not time: the server crashes once a third of the items
have settled, and comes back once the breaker has seen its third probe fail. Attempts are
counted with hooks, never seconds.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from sippet_async import ServerUnreachableError, TransportError, UsageError
from sippet_async.testing import FakeSippet, Outage

from ._support import client_for, contacts, free_port, phone_counts

N = 600
FAILED_PROBES = 3  # the server comes back after this many probes got no answer


@dataclass
class Watch:
    """Hooks: every HTTP attempt (and whether the server was down), what is in flight,
    and the breaker's changes; ``failed_probes`` is set after FAILED_PROBES of them."""

    down: bool = False
    sent_while_down: int = 0
    in_flight: set[asyncio.Task[object] | None] = field(default_factory=set)
    changes: list[str] = field(default_factory=list)
    failed_probes: asyncio.Event = field(default_factory=asyncio.Event)

    def on_request(self, action: str, attempt: int) -> None:
        self.sent_while_down += self.down
        self.in_flight.add(asyncio.current_task())

    def on_retry(self, action: str, attempt: int, cause: str, wait: float) -> None:
        pass

    def on_response(self, action: str, attempt: int, status: int, elapsed: float) -> None:
        self.in_flight.discard(asyncio.current_task())

    def on_breaker(self, state: str, wait: float) -> None:
        # "open" comes once when it opens, then once after each probe that failed
        if self.down and state == "open" and self.changes.count("open") >= FAILED_PROBES:
            self.failed_probes.set()
        self.changes.append(state)


@pytest.fixture
async def outage(server: FakeSippet) -> AsyncIterator[Outage]:
    """A crashable proxy in front of ``server``."""
    proxy = Outage(server.url)
    await proxy.up()
    yield proxy
    await proxy.aclose()


async def test_a_job_through_a_crash_probes_a_few_times_and_fails_nothing(
    server: FakeSippet, outage: Outage, fast_loop: None
) -> None:
    """Down mid-job: a handful of attempts while down (not one per item), 0 failed, unknown
    only for requests in flight at the crash, and each created contact exists once."""
    watch = Watch()
    third = asyncio.Event()
    crashed_with: list[int] = []

    async def crash_then_recover() -> None:
        await third.wait()
        # Sent but unanswered now: only these may end unknown.
        crashed_with.append(len(watch.in_flight))
        outage.down()
        watch.down = True
        await watch.failed_probes.wait()
        await outage.up()
        watch.down = False

    async with client_for(outage.url, hooks=watch) as client:
        controller = asyncio.create_task(crash_then_recover())
        statuses: collections.Counter[str] = collections.Counter()
        async with client.bulk("create_contact", contacts(N), fields=["id"]) as job:
            async for outcome in job:
                statuses[outcome.status] += 1
                if statuses.total() == N // 3:
                    third.set()
        await controller
        counters = client.counters

    assert statuses["failed"] == 0, job.report.summary()
    assert statuses["unknown"] <= crashed_with[0]
    assert statuses["succeeded"] + statuses["unknown"] == N
    assert not [phone for phone, n in phone_counts(server).items() if n > 1]
    # While down: the scouts that found it refused (the threshold) and the probes; not
    # the ~400 items left, nor their retries.
    assert counters.breaker_openings == 1
    assert watch.sent_while_down <= 2 * 3 + FAILED_PROBES, watch.changes
    assert job.report.retries.get("redrive_transport", 0) > 0  # the redrive waited it out
    assert counters.breaker == "closed"


async def test_redrive_gives_up_after_redrive_wait_with_the_cause(fast_loop: None) -> None:
    """A server that never comes back: the redrive waits redrive_wait seconds into the
    outage, then every item is failed with ServerUnreachableError saying so."""
    watch = Watch()
    async with client_for(f"http://127.0.0.1:{free_port()}", hooks=watch,
                          max_concurrency=8) as client:
        async with client.bulk("create_contact", contacts(50), fields=["id"],
                               redrive_wait=0.3) as job:
            outcomes = [o async for o in job]
        counters = client.counters
    assert {o.status for o in outcomes} == {"failed"}
    errors = [o.error for o in outcomes]
    assert all(isinstance(e, ServerUnreachableError) for e in errors)
    assert all("stayed unreachable for 0.3s" in str(e) for e in errors)
    assert all(isinstance(e.__cause__, TransportError) for e in errors if e is not None)
    # One attempt per concurrency slot before it opened, then the probes.
    assert counters.requests <= 8 + counters.probes


@pytest.mark.parametrize("bad", [-1.0, float("nan"), "60", True])
async def test_redrive_wait_must_be_seconds(bad: object) -> None:
    """A bad redrive_wait is a UsageError before anything runs."""
    async with client_for(f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(UsageError, match="redrive_wait"):
            client.bulk("create_contact", contacts(1), redrive_wait=bad)  # type: ignore[arg-type]
