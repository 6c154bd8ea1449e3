"""CallWorker consuming a RedisCallQueue in this process: outcomes recorded, takeover with a
lookup before any re-dial, graceful stop, a Redis restart mid-run."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis

from sippet_async import CallWorker, Outcome
from sippet_async.redis import RedisCallQueue
from sippet_async.testing import FakeSippet, Faults, RedisServer

from ._support import KEY, by_number, call, client_for, dials, poll_until

Queue = RedisCallQueue[dict[str, Any]]


@pytest.fixture
async def server() -> Any:
    """A fake Sippet with no records."""
    async with FakeSippet(KEY, seed=11) as fake:
        yield fake


async def _fill(queue: Queue, numbers: range) -> None:
    for i in numbers:
        await queue.put(call(i), job_id=f"j{i}")


async def _outcomes(queue: Queue, numbers: range) -> dict[int, Outcome[Any] | None]:
    return {i: await queue.outcome(f"j{i}") for i in numbers}


async def test_every_job_gets_one_recorded_outcome_and_one_dial(
    server: FakeSippet, redis_url: str
) -> None:
    """200 jobs, 5% of replies lost after commit: all succeed, each dialled once, the
    outcome is in Redis and no entry is left pending."""
    server.faults = Faults(p_lost_after_commit=0.05)
    async with Queue(redis_url, stream="calls", group="g") as queue:
        await _fill(queue, range(200))
        reported: list[Outcome[Any]] = []
        async with client_for(server) as client:
            worker = CallWorker(client, reported.append, reconcile=by_number(client),
                                concurrency=8)
            running = asyncio.create_task(worker.run(queue))
            await poll_until(lambda: len(reported) == 200)
            worker.stop()
            report = await running
        assert report.succeeded == 200
        assert report.reconciled > 0  # lost replies were looked up, not re-dialled
        assert sorted(o.index for o in reported) == list(range(200))  # put order
        stored = await _outcomes(queue, range(200))
        assert all(o is not None and o.status == "succeeded" for o in stored.values())
    counts = dials(server)
    assert len(counts) == 200
    assert max(counts.values()) == 1
    with redis.Redis.from_url(redis_url) as r:
        assert r.xpending("calls", "g")["pending"] == 0


@pytest.mark.parametrize("placed", [True, False], ids=["dialled-before-death", "not-dialled"])
async def test_a_dead_workers_job_is_looked_up_before_any_redial(
    server: FakeSippet, redis_url: str, placed: bool
) -> None:
    """A job claimed by a worker that died (no heartbeat) is taken over once idle longer
    than the request timeout, looked up first, and dialled only if the lookup finds no call."""
    async with Queue(redis_url, stream="calls", group="g", heartbeat=0.3) as queue, \
            client_for(server, timeout=0.5) as client:
        await _fill(queue, range(1))
        with redis.Redis.from_url(redis_url) as r:  # the worker that will die
            r.xgroup_create("calls", "g", id="0")
            assert r.xreadgroup("g", "ghost", {"calls": ">"}, count=1)
        assert await queue.ledger.claim("j0", owner="ghost") == "new"
        if placed:  # it dialled, then died before recording the outcome
            await client.run("create_call", input=call(0), fields=["id"])
        before = len(server.requests)
        reported: list[Outcome[Any]] = []
        worker = CallWorker(client, reported.append, reconcile=by_number(client))
        running = asyncio.create_task(worker.run(queue))
        await poll_until(lambda: len(reported) == 1, within=10)
        worker.stop()
        await running
        outcome = reported[0]
        assert outcome.status == "succeeded"
        assert outcome.reconciled is placed
        actions = [r.action for r in server.requests[before:]]
        assert actions[0] == "list_calls"  # the lookup came before anything else
        assert actions.count("create_call") == (0 if placed else 1)
        assert dials(server)[call(0)["toE164"]] == 1
        stored = await queue.outcome("j0")
        assert stored is not None
        assert stored.status == "succeeded"


async def test_without_a_lookup_a_taken_over_job_is_unknown_not_redialled(
    server: FakeSippet, redis_url: str
) -> None:
    """No reconcile=: the job a dead worker may have dialled is reported unknown, never sent."""
    async with Queue(redis_url, stream="calls", group="g", heartbeat=0.3) as queue, \
            client_for(server, timeout=0.5) as client:
        await _fill(queue, range(1))
        with redis.Redis.from_url(redis_url) as r:
            r.xgroup_create("calls", "g", id="0")
            r.xreadgroup("g", "ghost", {"calls": ">"}, count=1)
        await queue.ledger.claim("j0", owner="ghost")
        reported: list[Outcome[Any]] = []
        worker = CallWorker(client, reported.append)
        running = asyncio.create_task(worker.run(queue))
        await poll_until(lambda: len(reported) == 1, within=10)
        worker.stop()
        await running
    assert reported[0].status == "unknown"
    assert not server.calls


async def test_graceful_stop_finishes_in_flight_and_leaves_the_rest_pending(
    server: FakeSippet, redis_url: str
) -> None:
    """stop(): nothing more is taken, in-flight calls finish and are recorded; the rest
    stays queued and a second worker does it, each number dialled once."""
    server.latency = 0.05
    async with Queue(redis_url, stream="calls", group="g", heartbeat=0.3) as queue, \
            client_for(server, timeout=0.5) as client:
        await _fill(queue, range(60))
        first: list[Outcome[Any]] = []

        def report(outcome: Outcome[Any]) -> None:
            first.append(outcome)
            if len(first) == 10:
                worker.stop()

        worker = CallWorker(client, report, concurrency=4)
        await worker.run(queue)
        assert 10 <= len(first) < 60
        assert all(o.status == "succeeded" for o in first)
        assert len(server.calls) == len(first)  # in-flight ones finished; none abandoned
        with redis.Redis.from_url(redis_url) as r:
            assert not r.exists(f"calls:alive:{queue.consumer}")  # left: takeover at once

        rest: list[Outcome[Any]] = []
        second = CallWorker(client, rest.append, concurrency=4)
        async with Queue(redis_url, stream="calls", group="g") as again:
            running = asyncio.create_task(second.run(again))
            await poll_until(lambda: len(first) + len(rest) == 60, within=20)
            second.stop()
            await running
    counts = dials(server)
    assert len(counts) == 60
    assert max(counts.values()) == 1


async def test_a_redis_restart_mid_run(server: FakeSippet, own_redis: RedisServer) -> None:
    """Redis restarted without persistence: the worker reconnects and carries on; calls in
    flight are recorded; queued jobs and earlier outcomes are lost (the documented cost of
    persistence off); nothing is dialled twice."""
    server.latency = 0.05
    url = own_redis.url
    async with Queue(url, stream="calls", group="g", heartbeat=0.5) as queue, \
            client_for(server, timeout=0.5) as client:
        await _fill(queue, range(50))
        reported: list[Outcome[Any]] = []
        worker = CallWorker(client, reported.append, reconcile=by_number(client),
                            concurrency=2)
        running = asyncio.create_task(worker.run(queue))
        await poll_until(lambda: len(reported) >= 10, within=20)
        await asyncio.to_thread(own_redis.restart)
        before = len(reported)
        await _fill(queue, range(100, 120))  # put after the restart: done as usual
        await poll_until(lambda: {o.item["toE164"] for o in reported}
                         >= {call(i)["toE164"] for i in range(100, 120)}, within=20)
        worker.stop()
        await running
        after = await _outcomes(queue, range(100, 120))
        assert all(o is not None and o.status == "succeeded" for o in after.values())
        lost = [i for i, o in (await _outcomes(queue, range(50))).items() if o is None]
    assert lost  # queued jobs and finished jobs' records were on the restarted Redis
    assert before < 50  # the restart came mid-run
    counts = dials(server)
    assert max(counts.values()) == 1
    assert all(call(i)["toE164"] not in counts or counts[call(i)["toE164"]] == 1
               for i in lost)


async def test_a_worker_that_only_looked_dead_does_not_race_its_heir(
    server: FakeSippet, redis_url: str
) -> None:
    """Its heartbeat lapsed and an heir claimed the job while its send was in flight: the
    reply lost, it neither looks the job up nor re-sends it, and records nothing."""
    server.faults = Faults(p_lost_after_commit=1.0, only_actions=frozenset({"create_call"}))
    server.latency = 0.3
    async with Queue(redis_url, stream="calls", group="g") as queue, \
            client_for(server) as client:
        await _fill(queue, range(1))
        reported: list[Outcome[Any]] = []
        worker = CallWorker(client, reported.append, reconcile=by_number(client))
        running = asyncio.create_task(worker.run(queue))
        await poll_until(lambda: any(r.action == "create_call" for r in server.requests))
        await queue.ledger.leave(queue.consumer)  # as if its heartbeat had lapsed
        assert await queue.ledger.claim("j0", owner="heir") == "in_doubt"
        await poll_until(lambda: len(reported) == 1, within=10)
        worker.stop()
        await running
        assert reported[0].status == "unknown"
        assert await queue.outcome("j0") is None  # the heir's to settle
        assert await queue.ledger.owner("j0") == "heir"
    assert [r.action for r in server.requests] == ["create_call"]  # no lookup, no re-send
    with redis.Redis.from_url(redis_url) as r:
        assert r.xpending("calls", "g")["pending"] == 1  # not acknowledged
