"""RedisCallLedger: one claimant dials, done and ack in one step, takeover only from the dead."""

from __future__ import annotations

import asyncio

import redis

from sippet_async import Outcome, SippetError
from sippet_async.redis import RedisCallLedger, RedisCallQueue

from ._support import call


def _outcome(status: str = "succeeded") -> Outcome[dict[str, str]]:
    return Outcome(3, call(3), status, data={"id": "c-1"}, attempts=1,  # type: ignore[arg-type]
                   record_id="c-1")


async def test_concurrent_claims_only_one_may_dial(redis_url: str) -> None:
    """Of many owners claiming one job at once (all alive), exactly one gets ``new``."""
    ledgers = [RedisCallLedger(redis_url, prefix="p") for _ in range(8)]
    try:
        for i, ledger in enumerate(ledgers):
            await ledger.beat(f"w{i}")
        claims = await asyncio.gather(*(ledger.claim("job-1", owner=f"w{i}")
                                        for i, ledger in enumerate(ledgers)))
        assert sorted(claims) == ["busy"] * 7 + ["new"]
    finally:
        for ledger in ledgers:
            await ledger.aclose()


async def test_a_dead_owners_claim_comes_back_in_doubt(redis_url: str) -> None:
    """A claim held by an owner without a heartbeat is taken over, in doubt; a live
    owner's is not."""
    ledger = RedisCallLedger(redis_url, prefix="p", heartbeat=30)
    try:
        assert await ledger.claim("job", owner="dead") == "new"  # never beat: not alive
        assert await ledger.claim("job", owner="heir") == "in_doubt"
        await ledger.beat("heir")
        assert await ledger.claim("job", owner="third") == "busy"
        await ledger.leave("heir")  # a graceful exit: take over at once
        assert await ledger.claim("job", owner="third") == "in_doubt"
    finally:
        await ledger.aclose()


async def test_finish_records_the_outcome_and_acks_in_one_step(redis_url: str) -> None:
    """After finish, the outcome is readable and the entry is no longer pending; a worker
    whose job was taken over meanwhile records nothing."""
    queue = RedisCallQueue[dict[str, str]](redis_url, stream="s", group="g")
    try:
        await queue.put(call(3), job_id="j3")
        await queue.put(call(4), job_id="j4")
        r = redis.asyncio.Redis.from_url(redis_url)
        await r.xgroup_create("s", "g", id="0")
        read = await r.xreadgroup("g", "w1", {"s": ">"}, count=2)
        (e3, _), (e4, _) = read[0][1]
        ledger = queue.ledger
        assert await ledger.claim("j3", owner="w1") == "new"
        assert await ledger.finish("j3", _outcome(), owner="w1",
                                   ack=("s", "g", e3.decode())) is True
        pending = await r.xpending("s", "g")
        assert pending["pending"] == 1  # only j4's entry
        outcome = await queue.outcome("j3")
        assert outcome is not None
        assert (outcome.status, outcome.record_id, outcome.item) == ("succeeded", "c-1", call(3))

        assert await ledger.claim("j4", owner="w1") == "new"
        assert await ledger.claim("j4", owner="w2") == "in_doubt"  # w1 has no heartbeat
        assert await ledger.finish("j4", _outcome(), owner="w1",
                                   ack=("s", "g", e4.decode())) is False
        assert (await r.xpending("s", "g"))["pending"] == 1  # not acked by the old owner
        assert await queue.outcome("j4") is None
        await r.aclose()
    finally:
        await queue.aclose()


async def test_release_and_errors_round_trip(redis_url: str) -> None:
    """A released claim is ``new`` again; a stored error keeps its type name."""
    ledger = RedisCallLedger(redis_url, prefix="p")
    try:
        assert await ledger.claim("j", owner="a") == "new"
        await ledger.release("j", owner="a")
        assert await ledger.claim("j", owner="b") == "new"
        failed = Outcome(0, call(0), "unknown", error=SippetError("boom"))
        assert await ledger.finish("j", failed, owner="b")
        assert await ledger.claim("j", owner="c") == "done"
        stored = await ledger.outcome("j")
        assert stored is not None
        assert stored.status == "unknown"
        assert str(stored.error) == "SippetError: boom"
    finally:
        await ledger.aclose()
