"""Leaving a bulk job early: break, task cancel, stop() and interrupt() leave nothing running."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sippet_async import BulkJob, OutcomeUnknownError, SippetClient
from sippet_async._jobs._journal import Journal
from sippet_async.testing import FakeSippet

from ._support import (
    ByPhone,
    Counting,
    assert_exactly_one_contact_per_phone,
    client_for,
    contact,
)

N = 300


def _job_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("sippet-bulk")]


async def test_break_inside_async_with_stops_everything(
    client: SippetClient, server: FakeSippet, tmp_path: Path
) -> None:
    """break: nothing of the job keeps running, every pulled item is accounted, journal closed."""
    items = Counting(N)
    yielded = 0
    async with client.bulk("create_contact", items, concurrency=16,
                           journal=tmp_path / "j") as job:
        async for _ in job:
            yielded += 1
            if yielded == 20:
                break
    assert _job_tasks() == []
    assert yielded == 20 < items.pulled < N
    assert job.report.total == items.pulled  # yielded, finished unseen, or interrupted
    assert job.report.interrupted == len(job.interrupted)
    assert all(o.status == "unknown" for o in job.interrupted)
    Journal.open(tmp_path / "j", action="create_contact").close()  # the lock was released


async def test_cancelling_the_consumer_leaves_nothing_and_resume_completes(
    server: FakeSippet, tmp_path: Path
) -> None:
    """A task cancelled mid-send leaves its items in doubt in the journal; a resume settles all."""
    journal = tmp_path / "j"
    consumer: asyncio.Task[None] | None = None
    seen: list[int] = []

    class CancelOnFortiethSend:
        sent = 0

        def on_request(self, action: str, attempt: int) -> None:
            self.sent += 1
            if self.sent == 40 and consumer is not None:
                consumer.cancel()  # while this request is about to go out

        def on_retry(self, action: str, attempt: int, cause: str, wait: float) -> None: ...

        def on_response(self, action: str, attempt: int, status: int, elapsed: float) -> None:
            ...

    async with client_for(server, hooks=CancelOnFortiethSend()) as client:

        async def consume() -> None:
            async with client.bulk("create_contact", Counting(N), concurrency=16,
                                   journal=journal) as job:
                async for outcome in job:
                    seen.append(outcome.index)

        consumer = asyncio.create_task(consume())
        await asyncio.wait([consumer])
        assert consumer.cancelled()
        assert _job_tasks() == []

    lookup = None
    async with client_for(server) as client:
        lookup = ByPhone(client)
        resumed = client.bulk("create_contact", Counting(N), concurrency=16, journal=journal,
                              reconcile=lookup)
        async with resumed:
            outcomes = [o async for o in resumed]
    assert sorted(o.index for o in outcomes) == list(range(N))
    assert all(o.ok for o in outcomes)
    assert {o.index for o in outcomes if o.status == "skipped"} >= set(seen)
    assert lookup.calls >= 1  # the items cut off in flight were looked up, not just re-sent
    assert_exactly_one_contact_per_phone(server, N)


async def test_stop_drains_what_was_taken(client: SippetClient) -> None:
    """stop(): no more input is taken; every item already taken is still yielded."""
    items = Counting(N)
    outcomes = []
    async with client.bulk("create_contact", items, concurrency=8) as job:
        async for outcome in job:
            outcomes.append(outcome)
            if len(outcomes) == 10:
                job.stop()
    assert len(outcomes) == items.pulled < N
    assert job.report.interrupted == 0
    assert all(o.ok for o in outcomes)


async def test_stop_ends_an_async_source_that_waits_forever(client: SippetClient) -> None:
    """stop() ends a job whose async input is idle (e.g. an empty queue) without losing items."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for i in range(5):
        queue.put_nowait(contact(i))

    async def source() -> Any:
        while True:
            yield await queue.get()

    outcomes = []
    async with client.bulk("create_contact", source(), concurrency=2) as job:
        async for outcome in job:
            outcomes.append(outcome)
            if len(outcomes) == 5:
                job.stop()  # the source now waits on an empty queue
    assert sorted(o.index for o in outcomes) == list(range(5))
    queue.put_nowait(contact(99))
    assert queue.qsize() == 1  # nothing was taken after stop()


async def test_interrupt_yields_in_flight_items_as_unknown(server: FakeSippet) -> None:
    """interrupt(): what is in flight is cancelled and yielded as unknown; then the end."""
    job: BulkJob[Any] | None = None

    class InterruptWhenFull:
        sent = 0

        def on_request(self, action: str, attempt: int) -> None:
            self.sent += 1
            if self.sent == 4 and job is not None:
                job.interrupt()

        def on_retry(self, action: str, attempt: int, cause: str, wait: float) -> None: ...

        def on_response(self, action: str, attempt: int, status: int, elapsed: float) -> None:
            ...

    server.latency = 30.0  # every request hangs until interrupted
    async with client_for(server, hooks=InterruptWhenFull()) as client:
        job = client.bulk("create_contact", Counting(N), concurrency=4)
        async with job:
            outcomes = [o async for o in job]
    assert sorted(o.index for o in outcomes) == [0, 1, 2, 3]
    assert all(o.status == "unknown" for o in outcomes)
    assert all(isinstance(o.error, OutcomeUnknownError) for o in outcomes)
    assert job.report.interrupted == 4 == job.report.unknown
    assert _job_tasks() == []


async def test_aclose_before_iterating_and_twice_is_harmless(client: SippetClient) -> None:
    """aclose() on a job never iterated (and again) runs nothing and raises nothing."""
    items = Counting(10)
    job = client.bulk("create_contact", items)
    await job.aclose()
    await job.aclose()
    assert items.pulled == 0
    assert [o async for o in job] == []
