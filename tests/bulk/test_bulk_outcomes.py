"""client.bulk: one outcome per input item, whatever the input and whatever went wrong."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from sippet_async import (
    BulkJob,
    InvalidInputError,
    OutcomeUnknownError,
    RateLimitError,
    RetryPolicy,
    SippetClient,
    UsageError,
)
from sippet_async.testing import FakeSippet, Faults, Reply

from ._support import (
    ByPhone,
    assert_exactly_one_contact_per_phone,
    assert_one_outcome_per_index,
    client_for,
    contact,
    contacts,
    no_wait,
)

N = 120
# Only faults after which a create is provably not executed, so every item lands.
FAULTS_NO_AMBIGUITY = Faults(p_429=0.3, retry_after=1.0)


async def _collect(job: BulkJob[Any]) -> list[Any]:
    async with job:
        return [outcome async for outcome in job]


async def _agen(n: int) -> AsyncIterator[dict[str, Any]]:
    for i in range(n):
        yield contact(i)


@pytest.mark.parametrize("kind", ["list", "generator", "async generator"])
async def test_every_item_gets_one_succeeded_outcome(
    kind: str, client: SippetClient, server: FakeSippet
) -> None:
    """A list, a generator and an async generator: one outcome per item, with its data."""
    items: Any = {"list": list(contacts(N)), "generator": contacts(N),
                  "async generator": _agen(N)}[kind]
    outcomes = await _collect(client.bulk("create_contact", items, fields=["id", "phoneE164"]))
    assert_one_outcome_per_index(outcomes, N)
    for outcome in outcomes:
        assert outcome.ok
        assert outcome.status == "succeeded"
        assert outcome.error is None
        assert outcome.item == contact(outcome.index)
        assert outcome.data["phoneE164"] == contact(outcome.index)["phoneE164"]
        assert outcome.record_id == outcome.data["id"]
        assert outcome.attempts == 1
    assert_exactly_one_contact_per_phone(server, N)


async def test_ordered_yields_in_input_order_under_faults(server: FakeSippet) -> None:
    """ordered=True: outcomes come in index order even when retries reorder completions."""
    server.faults = FAULTS_NO_AMBIGUITY
    async with client_for(server) as client:
        job = client.bulk("create_contact", contacts(N), fields=["id"], ordered=True,
                          concurrency=8)
        outcomes = await _collect(job)
    assert [o.index for o in outcomes] == list(range(N))
    assert all(o.ok for o in outcomes)
    assert job.report.retries.get("429", 0) > 0  # the faults did reorder completions


async def test_invalid_items_fail_with_the_servers_message(
    client: SippetClient, server: FakeSippet
) -> None:
    """Rejected items are reported failed with the server's validation error, not dropped."""
    items = [contact(0), {"fullName": "No Phone"}, contact(2), {"fullName": "X", "phoneE164": "12"}]
    outcomes = await _collect(client.bulk("create_contact", items, fields=["id"]))
    by_index = {o.index: o for o in outcomes}
    assert [by_index[i].status for i in range(4)] == ["succeeded", "failed", "succeeded",
                                                      "failed"]
    for i in (1, 3):
        error = by_index[i].error
        assert isinstance(error, InvalidInputError)
        assert error.errors[0].fields == ("phoneE164",)
        assert not by_index[i].ok
    assert len(server.contacts) == 2


async def test_a_request_builder_that_fails_rejects_only_that_item(
    client: SippetClient, server: FakeSippet
) -> None:
    """request= raising for one item makes that item failed (UsageError) without a request."""
    def request(item: dict[str, Any]) -> dict[str, Any]:
        if item["phoneE164"].endswith("3"):
            raise ValueError("no thanks")
        return {"input": item}

    outcomes = await _collect(
        client.bulk("create_contact", contacts(10), fields=["id"], request=request)
    )
    failed = [o for o in outcomes if not o.ok]
    assert [o.index for o in failed] == [3]
    assert isinstance(failed[0].error, UsageError)
    assert "no thanks" in str(failed[0].error)
    assert failed[0].attempts == 0
    assert len(server.contacts) == 9


async def test_request_builds_identity_for_updates(
    client: SippetClient, server: FakeSippet
) -> None:
    """request= can send identity + input, e.g. for update_contact."""
    created = [await client.run("create_contact", input=contact(i), fields=["id"])
               for i in range(5)]
    job = client.bulk("update_contact", created, fields=["company"],
                      request=lambda c: {"identity": c["id"], "input": {"company": "Sippet"}})
    outcomes = await _collect(job)
    assert all(o.ok and o.data == {"company": "Sippet"} for o in outcomes)
    assert {c["company"] for c in server.contacts} == {"Sippet"}


async def test_lost_write_without_reconcile_is_unknown_and_never_resent(
    client: SippetClient, server: FakeSippet
) -> None:
    """A write lost after commit is reported unknown and sent exactly once."""
    server.push_reply(Reply(execute=True, reset=True))  # executes, then drops the connection
    outcomes = await _collect(client.bulk("create_contact", [contact(0)], fields=["id"]))
    (outcome,) = outcomes
    assert outcome.status == "unknown"
    assert not outcome.ok
    assert isinstance(outcome.error, OutcomeUnknownError)
    assert outcome.attempts == 1
    assert len([r for r in server.requests if r.action == "create_contact"]) == 1
    assert len(server.contacts) == 1


async def test_reconcile_finds_a_lost_write_and_does_not_resend(
    client: SippetClient, server: FakeSippet
) -> None:
    """Unknown outcome + reconcile finds the record: succeeded with it, no second create."""
    server.push_reply(Reply(execute=True, reset=True))
    lookup = ByPhone(client)
    job = client.bulk("create_contact", [contact(0)], fields=["id"], reconcile=lookup)
    (outcome,) = await _collect(job)
    assert outcome.status == "succeeded"
    assert outcome.reconciled
    assert outcome.data["phoneE164"] == contact(0)["phoneE164"]
    assert outcome.record_id == server.contacts[0]["id"]
    assert len([r for r in server.requests if r.action == "create_contact"]) == 1
    assert lookup.calls == 1
    assert job.report.reconciled == 1


async def test_reconcile_not_found_resends_once(
    client: SippetClient, server: FakeSippet
) -> None:
    """Unknown outcome + reconcile finds nothing: the item is sent once more and succeeds."""
    server.push_reply(Reply(reset=True))  # dropped before executing
    job = client.bulk("create_contact", [contact(0)], fields=["id"], reconcile=ByPhone(client))
    (outcome,) = await _collect(job)
    assert outcome.status == "succeeded"
    assert not outcome.reconciled
    assert outcome.attempts == 2
    assert job.report.retries["resend_after_reconcile"] == 1
    assert len(server.contacts) == 1


async def test_failing_reconcile_leaves_the_item_unknown(
    client: SippetClient, server: FakeSippet
) -> None:
    """A lookup that raises cannot decide: unknown, with the lookup's error as the cause."""
    server.push_reply(Reply(reset=True))

    async def broken(item: dict[str, Any]) -> Any:
        raise RuntimeError("lookup down")

    job = client.bulk("create_contact", [contact(0)], reconcile=broken)
    (outcome,) = await _collect(job)
    assert outcome.status == "unknown"
    assert isinstance(outcome.error, OutcomeUnknownError)
    assert isinstance(outcome.error.__cause__, RuntimeError)
    assert len(server.requests) == 1


class FlakyLookup(ByPhone):
    """ByPhone that first fails `failures` times as if its reads ran out of retries."""

    def __init__(self, client: SippetClient, failures: int) -> None:
        super().__init__(client)
        self.failures = failures

    async def __call__(self, item: dict[str, Any]) -> Any:
        if self.failures:
            self.failures -= 1
            raise RateLimitError("list_contacts: rate limited (HTTP 429)", retry_after=0.0)
        return await super().__call__(item)


async def test_a_lookup_that_fails_for_now_is_tried_again_in_the_redrive_pass(
    client: SippetClient, server: FakeSippet
) -> None:
    """Lost write, lookup 429s: the item waits for the redrive pass, where the lookup finds it."""
    server.push_reply(Reply(execute=True, reset=True))
    lookup = FlakyLookup(client, failures=1)
    job = client.bulk("create_contact", contacts(3), fields=["id"], reconcile=lookup,
                      concurrency=1)
    outcomes = await _collect(job)
    assert [(o.index, o.status, o.reconciled) for o in outcomes] == [
        (1, "succeeded", False), (2, "succeeded", False), (0, "succeeded", True)]
    assert len([r for r in server.requests if r.action == "create_contact"]) == 3
    assert job.report.retries["redrive_rate_limited"] == 1
    assert_exactly_one_contact_per_phone(server, 3)


async def test_a_lookup_that_keeps_failing_leaves_the_item_unknown_not_resent(
    client: SippetClient, server: FakeSippet
) -> None:
    """Lost write, lookup fails in both passes: unknown, and the create is never re-sent."""
    server.push_reply(Reply(reset=True))  # not executed, but the client cannot know
    job = client.bulk("create_contact", [contact(0)], reconcile=FlakyLookup(client, 2))
    (outcome,) = await _collect(job)
    assert outcome.status == "unknown"
    assert isinstance(outcome.error, OutcomeUnknownError)
    assert isinstance(outcome.error.__cause__, RateLimitError)
    assert len([r for r in server.requests if r.action == "create_contact"]) == 1


async def test_exhausted_retries_get_one_redrive_pass(server: FakeSippet) -> None:
    """429s beyond the retry policy set the item aside; the redrive pass at the end lands it."""
    async with client_for(server, retry=RetryPolicy(attempts=1, sleep=no_wait)) as client:
        server.push_reply(Reply(status=429, headers={"Retry-After": "0"}))
        job = client.bulk("create_contact", contacts(3), fields=["id"], concurrency=1)
        outcomes = await _collect(job)
    assert [o.index for o in outcomes] == [1, 2, 0]  # index 0 came back in the redrive pass
    assert all(o.ok for o in outcomes)
    assert outcomes[-1].attempts == 2
    assert job.report.retries == {"redrive_rate_limited": 1}
    assert len(server.contacts) == 3


async def test_redrive_failing_again_is_reported_failed(server: FakeSippet) -> None:
    """A second retryable failure in the redrive pass is final: failed, with that error."""
    async with client_for(server, retry=RetryPolicy(attempts=1, sleep=no_wait)) as client:
        for _ in range(2):
            server.push_reply(Reply(status=429, headers={"Retry-After": "0"}))
        job = client.bulk("create_contact", [contact(0)], fields=["id"])
        (outcome,) = await _collect(job)
    assert outcome.status == "failed"
    assert isinstance(outcome.error, RateLimitError)
    assert len(server.contacts) == 0


async def test_no_redrive_reports_at_once(server: FakeSippet) -> None:
    """redrive=False: an exhausted retryable failure is reported failed straight away."""
    async with client_for(server, retry=RetryPolicy(attempts=1, sleep=no_wait)) as client:
        server.push_reply(Reply(status=429, headers={"Retry-After": "0"}))
        job = client.bulk("create_contact", contacts(2), redrive=False, concurrency=1)
        outcomes = await _collect(job)
    assert [(o.index, o.status) for o in outcomes] == [(0, "failed"), (1, "succeeded")]


async def test_look_ahead_is_bounded(client: SippetClient) -> None:
    """The input is pulled lazily: never more than `concurrency` items ahead of the caller."""
    pulled = 0
    most_ahead = 0

    def items() -> Iterator[dict[str, Any]]:
        nonlocal pulled
        for i in range(200):
            pulled += 1
            yield contact(i)

    yielded = 0
    async with client.bulk("create_contact", items(), concurrency=4) as job:
        async for _ in job:
            yielded += 1
            most_ahead = max(most_ahead, pulled - yielded)
    assert yielded == 200
    assert most_ahead <= 4 + 4  # in flight + handed over but not yet taken


async def test_ordered_look_ahead_is_bounded_by_the_window(server: FakeSippet) -> None:
    """ordered=True, first item stuck in a retry: item `window` is not pulled before it."""
    window = 10
    head_yielded = False
    early: list[int] = []  # items pulled `window` or more ahead of the one awaited
    released = asyncio.Event()

    class ReleaseWhenWindowIsDone:
        responses = 0

        def on_request(self, action: str, attempt: int) -> None: ...

        def on_retry(self, action: str, attempt: int, cause: str, wait: float) -> None: ...

        def on_response(self, action: str, attempt: int, status: int, elapsed: float) -> None:
            self.responses += 1
            if self.responses == window:  # the head's 429 and the other nine of the window
                released.set()

    async def held(seconds: float) -> None:  # the head's retry waits here
        await released.wait()

    def items() -> Iterator[dict[str, Any]]:
        for i in range(40):
            if i >= window and not head_yielded:
                early.append(i)
                released.set()  # the window did not hold; let the job finish
            yield contact(i)

    server.push_reply(Reply(status=429, headers={"Retry-After": "0"}))  # item 0's first try
    hooks = ReleaseWhenWindowIsDone()
    async with client_for(server, retry=RetryPolicy(sleep=held), hooks=hooks) as client:
        job = client.bulk("create_contact", items(), concurrency=4, ordered=True,
                          window=window)
        indexes = []
        async with job:
            async for outcome in job:
                head_yielded = True
                indexes.append(outcome.index)
    assert indexes == list(range(40))
    assert early == []
    assert job.report.retries.get("429") == 1


async def test_report_counts_and_timing(client: SippetClient, server: FakeSippet) -> None:
    """The report adds up to the input, with wall time, throughput and a summary line."""
    items = [*contacts(10), {"fullName": "No Phone"}]
    job = client.bulk("create_contact", items)
    outcomes = await _collect(job)
    report = job.report
    assert (report.succeeded, report.failed, report.unknown, report.skipped) == (10, 1, 0, 0)
    assert report.total == len(outcomes) == 11
    assert report.wall_time > 0
    assert report.throughput > 0
    assert "10 succeeded, 1 failed" in report.summary()
    counts = collections.Counter(o.status for o in outcomes)
    assert counts == {"succeeded": 10, "failed": 1}


async def test_reads_work_too(client: SippetClient, server: FakeSippet) -> None:
    """Any action: a bulk of get_contact reads returns each record or a NotFoundError."""
    created = [await client.run("create_contact", input=contact(i), fields=["id"])
               for i in range(3)]
    ids = [c["id"] for c in created] + ["00000000-0000-4000-8000-000000000000"]
    job = client.bulk("get_contact", ids, fields=["id"], request=lambda i: {"input": {"id": i}},
                      ordered=True)
    outcomes = await _collect(job)
    assert [o.status for o in outcomes] == ["succeeded"] * 3 + ["failed"]
    assert [o.data["id"] for o in outcomes[:3]] == ids[:3]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"items": "abc"}, "items must be"),
        ({"items": {"a": 1}}, "items must be"),
        ({"items": 42}, "items must be"),
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": True}, "concurrency"),
        ({"concurrency": 4, "window": 2}, "window"),
        ({"fields": "id"}, "fields"),
        ({"reconcile": "phone"}, "reconcile"),
        ({"action": ""}, "action"),
    ],
)
async def test_bad_options_raise_usage_error_at_once(
    client: SippetClient, options: dict[str, Any], message: str
) -> None:
    """Bad arguments raise UsageError naming the problem, before anything runs."""
    arguments: dict[str, Any] = {"action": "create_contact", "items": [contact(0)], **options}
    with pytest.raises(UsageError, match=message):
        client.bulk(arguments.pop("action"), arguments.pop("items"), **arguments)


async def test_a_bad_key_function_stops_the_job(client: SippetClient) -> None:
    """key= returning something other than a non-empty str raises UsageError from iteration."""
    job = client.bulk("create_contact", contacts(3), key=lambda item: 7)  # type: ignore[arg-type,return-value]
    with pytest.raises(UsageError, match="key="):
        await _collect(job)


async def test_items_that_are_not_json_need_a_key_only_for_a_journal(
    client: SippetClient, tmp_path: Path
) -> None:
    """Any object works as an item with request=; a journal needs key= for non-JSON items."""
    class Person:
        def __init__(self, i: int) -> None:
            self.i = i

    job = client.bulk("create_contact", [Person(1)],
                      request=lambda p: {"input": contact(p.i)})
    (outcome,) = await _collect(job)
    assert outcome.ok
    with pytest.raises(UsageError, match="pass key="):
        outcome.key  # noqa: B018 - computed on demand
    job = client.bulk("create_contact", [Person(2)], request=lambda p: {"input": contact(p.i)},
                      journal=tmp_path / "j")
    with pytest.raises(UsageError, match="pass key="):
        await _collect(job)
    job = client.bulk("create_contact", [Person(3)], request=lambda p: {"input": contact(p.i)},
                      journal=tmp_path / "j2", key=lambda p: str(p.i))
    (outcome,) = await _collect(job)
    assert outcome.ok
    assert outcome.key == "3"
