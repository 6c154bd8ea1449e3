"""Writes are never duplicated: 2,000 create_call under connection faults, idempotency keys."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import pytest

from sippet_async import OutcomeUnknownError, SippetError, UsageError
from sippet_async.testing import FakeSippet, Faults, Reply

from ._support import KEY, FakeSleep, client_for, new_call

CALLS = 2000
FAULTS = Faults(p_lost_after_commit=0.02, p_reset_before=0.02)


def _executions_by_phone(server: FakeSippet) -> Counter[str]:
    """How many times each create_call input actually executed on the server."""
    return Counter(
        r.json["input"]["toE164"] for r in server.requests
        if r.executed and r.action == "create_call"
    )


async def _gather(coros: list[object]) -> list[object]:
    return await asyncio.gather(*coros, return_exceptions=True)  # type: ignore[arg-type]


async def test_2000_create_calls_under_faults_never_execute_twice(
    server: FakeSippet, sleep: FakeSleep
) -> None:
    """2% lost-after-commit + 2% resets: zero duplicates; failures are OutcomeUnknownError."""
    server.faults = FAULTS
    async with client_for(server, sleep=sleep) as client:
        outcomes = await _gather([
            client.run("create_call", input=new_call(i), fields=["id"]) for i in range(CALLS)
        ])
        unknown = client.counters.unknown_outcomes
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert all(isinstance(f, OutcomeUnknownError) for f in failures), {type(f) for f in failures}
    assert all(isinstance(f.__cause__, SippetError) for f in failures)
    executions = _executions_by_phone(server)
    assert max(executions.values()) == 1  # no input executed twice
    assert len(server.calls) == sum(executions.values())
    assert len(server.requests) == CALLS  # an ambiguous write is never re-sent
    faults = Counter(r.fault for r in server.requests)
    assert len(failures) == unknown == faults["lost_after_commit"] + faults["reset_before"]
    assert faults["lost_after_commit"] > 10
    assert faults["reset_before"] > 10
    # A lost reply executed anyway: those calls exist although the client saw a failure.
    assert len(server.calls) == CALLS - faults["reset_before"]


async def test_2000_reads_under_the_same_faults_all_succeed(
    server: FakeSippet, sleep: FakeSleep
) -> None:
    """Reads are retried through resets and lost replies: every one succeeds."""
    server.faults = FAULTS
    async with client_for(server, sleep=sleep) as client:
        contacts = await client.run("list_contacts", fields=["id"], page={"limit": 5})
        ids = [c["id"] for c in contacts["results"]]
        outcomes = await _gather([
            client.run("get_contact", input={"id": ids[i % 5]}, fields=["id"])
            for i in range(CALLS)
        ])
        retries = client.counters.total_retries
    assert not [o for o in outcomes if isinstance(o, BaseException)]
    assert [o["id"] for o in outcomes] == [ids[i % 5] for i in range(CALLS)]  # type: ignore[index]
    assert retries == len(server.requests) - CALLS - 1 > 40


async def test_honoured_idempotency_keys_resend_with_the_same_key_and_never_duplicate(
    sleep: FakeSleep
) -> None:
    """Server and client honour Idempotency-Key: ambiguous writes are re-sent, replayed once."""
    async with FakeSippet(KEY, honour_idempotency_key=True, faults=FAULTS) as server:
        async with client_for(server, sleep=sleep, honours_idempotency_key=True) as client:
            outcomes = await _gather([
                client.run("create_call", input=new_call(i), fields=["id"],
                           idempotency_key=f"job-7/item-{i}")
                for i in range(1000)
            ])
        assert not [o for o in outcomes if isinstance(o, BaseException)]
        executions = _executions_by_phone(server)
        assert max(executions.values()) == 1
        assert len(server.calls) == 1000
        replayed = [r for r in server.requests if r.replayed]
        assert replayed  # lost replies were re-sent and answered from the key's cache
        by_key = Counter(r.headers["idempotency-key"] for r in server.requests)
        for request in replayed:
            assert by_key[request.headers["idempotency-key"]] >= 2
        # The replayed answer is the one the first execution produced.
        ids = {o["id"] for o in outcomes}  # type: ignore[index]
        assert ids == {c["id"] for c in server.calls}


async def test_a_key_alone_does_not_make_a_write_resendable(
    server: FakeSippet, sleep: FakeSleep
) -> None:
    """Without honours_idempotency_key the key is sent, but a lost reply is still unknown."""
    server.push_reply(Reply(execute=True, reset=True))
    async with client_for(server, sleep=sleep) as client:
        with pytest.raises(OutcomeUnknownError):
            await client.run("create_call", input=new_call(1), idempotency_key="k-1")
    assert [r.headers.get("idempotency-key") for r in server.requests] == ["k-1"]


async def test_the_key_is_sent_as_the_idempotency_key_header(server: FakeSippet) -> None:
    """idempotency_key= travels as Idempotency-Key, and only when given."""
    async with client_for(server) as client:
        await client.run("create_call", input=new_call(1), idempotency_key="abc-123")
        await client.run("create_call", input=new_call(2))
    assert [r.headers.get("idempotency-key") for r in server.requests] == ["abc-123", None]


@pytest.mark.parametrize("key", ["", "a\r\nx-evil: 1", "x" * 256, 42])
async def test_bad_idempotency_keys_are_usage_errors_before_any_io(
    server: FakeSippet, key: object
) -> None:
    """An empty, over-long, non-string or header-breaking key is refused before sending."""
    async with client_for(server) as client:
        with pytest.raises(UsageError, match="idempotency_key"):
            await client.run("create_call", input=new_call(1), idempotency_key=key)  # type: ignore[arg-type]
    assert server.requests == []


async def test_idempotency_key_never_appears_in_logs(
    server: FakeSippet, sleep: FakeSleep, caplog: pytest.LogCaptureFixture
) -> None:
    """Retries are logged with action, attempt, cause and wait, never the key."""
    key = "secret-idem-key-9f8e7d"
    server.push_reply(Reply(status=503, headers={"Retry-After": "1"}))
    server.push_reply(Reply(execute=True, reset=True))
    caplog.set_level(logging.DEBUG, logger="sippet_async")
    async with client_for(server, sleep=sleep) as client:
        with pytest.raises(OutcomeUnknownError):
            await client.run("create_call", input=new_call(1), idempotency_key=key)
    assert "create_call" in caplog.text
    assert key not in caplog.text
    assert KEY not in caplog.text
