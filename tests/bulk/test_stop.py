"""Stop on what no retry can fix: the first such reply stops a bulk job; the rest is not sent."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import pytest

from sippet_async import (
    ActionNotFoundError,
    AuthenticationError,
    BulkJob,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    OutcomeUnknownError,
    ProtocolError,
    RateLimitError,
    ResponseTooLargeError,
    RetryPolicy,
    ServerError,
    SippetClient,
    SippetError,
    TLSVerificationError,
    TransportError,
    TransportTimeoutError,
    UsageError,
)
from sippet_async._errors import is_fatal
from sippet_async._jobs._journal import Journal
from sippet_async._jobs._report import default_key
from sippet_async.testing import FakeSippet, Reply

from ._support import (
    ByPhone,
    Counting,
    assert_exactly_one_contact_per_phone,
    assert_one_outcome_per_index,
    client_for,
    contact,
    contacts,
    no_wait,
)

WRONG_KEY: Final = "sk_test_wrong_key_fedcba9876543210"


def _wrong_key_client(server: FakeSippet, **options: Any) -> SippetClient:
    """A client for ``server`` with a key it rejects; retries never wait."""
    options.setdefault("retry", RetryPolicy(sleep=no_wait))
    return SippetClient(WRONG_KEY, base_url=server.url, **options)


async def _collect(job: BulkJob[Any]) -> list[Any]:
    async with job:
        return [outcome async for outcome in job]


async def _agen(n: int) -> AsyncIterator[dict[str, Any]]:
    for i in range(n):
        yield contact(i)


@pytest.mark.parametrize(("error", "fatal"), [
    (AuthenticationError("k", status=401), True),
    (AuthenticationError("k", status=403), True),
    (AuthenticationError("an authentication_failed item in a 200 envelope"), True),
    (ActionNotFoundError("create_contactz", ()), True),
    (ProtocolError("redirect", status=301), True),
    (ProtocolError("redirect", status=307), True),
    (ProtocolError("no endpoint", status=404), True),
    (ProtocolError("no endpoint", status=405), True),
    (ProtocolError("bad envelope", status=200), False),
    (ProtocolError("odd status", status=418), False),
    (ProtocolError("no status"), False),
    (ResponseTooLargeError("big", status=200), False),
    (InvalidInputError("create_contact", ()), False),
    (ForbiddenError("update_contact", ()), False),
    (NotFoundError("get_contact", ()), False),
    (RateLimitError("slow down", retry_after=1.0), False),
    (ServerError("down", status=503), False),
    (TLSVerificationError("certificate refused"), True),
    (TransportError("refused", sent=False), False),
    (TransportTimeoutError("slow"), False),
    (OutcomeUnknownError("maybe", action="create_contact"), False),
    (UsageError("bad argument"), False),
    (ValueError("not ours"), False),
])
def test_the_rule_of_what_no_retry_can_fix(error: BaseException, fatal: bool) -> None:
    """Errors about the key, the URL or the action are fatal; errors about one item are not."""
    assert is_fatal(error) is fatal


async def test_a_wrong_key_stops_a_bulk_job_after_one_window_and_resumes(
    server: FakeSippet, fast_loop: None, tmp_path: Path
) -> None:
    """2,000 creates, wrong key: at most `concurrency` requests, the rest not sent; the next
    run with the right key sends every item once."""
    n, concurrency = 2000, 64
    journal = tmp_path / "j"
    async with _wrong_key_client(server) as client:
        job = client.bulk("create_contact", list(contacts(n)), fields=["id"],
                          concurrency=concurrency, journal=journal)
        outcomes = await _collect(job)
    sent = len(server.requests)
    assert 0 < sent <= concurrency
    assert_one_outcome_per_index(outcomes, n)
    cause = job.stopped_by
    assert isinstance(cause, AuthenticationError)
    by_status = collections.defaultdict(list)
    for outcome in outcomes:
        by_status[outcome.status].append(outcome)
    assert set(by_status) == {"failed", "not_sent"}
    assert len(by_status["failed"]) == sent  # the ones in flight got the 401 too
    assert all(isinstance(o.error, AuthenticationError) for o in by_status["failed"])
    assert all(o.error is cause and not o.ok and o.attempts == 0
               for o in by_status["not_sent"])
    report = job.report
    assert (report.failed, report.not_sent, report.total) == (sent, n - sent, n)
    assert report.stopped_by is cause
    assert f"{n - sent} not sent" in report.summary()
    assert "stopped by AuthenticationError" in report.summary()
    assert server.contacts == []

    server.reset_records()
    async with client_for(server) as client:
        again = await _collect(client.bulk("create_contact", list(contacts(n)),
                                           fields=["id"], concurrency=concurrency,
                                           journal=journal))
    assert {o.status for o in again} == {"succeeded"}
    assert len([r for r in server.requests if r.action == "create_contact"]) == n
    assert_exactly_one_contact_per_phone(server, n)


async def test_a_key_revoked_mid_job_resumes_without_duplicates(
    server: FakeSippet, tmp_path: Path
) -> None:
    """The key stops working halfway: done items are journaled and skipped by the re-run,
    which sends each of the others exactly once."""
    n, concurrency = 300, 8
    journal = tmp_path / "j"
    async with client_for(server) as client:
        job = client.bulk("create_contact", contacts(n), fields=["id"],
                          concurrency=concurrency, journal=journal)
        outcomes = []
        async with job:
            async for outcome in job:
                outcomes.append(outcome)
                if len(outcomes) == 100:
                    server.api_key = "sk_test_rotated_key_0123456789"
    assert isinstance(job.stopped_by, AuthenticationError)
    assert_one_outcome_per_index(outcomes, n)
    done = {o.index for o in outcomes if o.status == "succeeded"}
    assert len(done) >= 100
    refused = [r for r in server.requests if r.status == 401]
    assert 0 < len(refused) <= concurrency
    assert job.report.not_sent == n - len(done) - job.report.failed > 0

    server.reset_records()
    async with SippetClient(server.api_key, base_url=server.url,
                            retry=RetryPolicy(sleep=no_wait)) as client:
        again = {o.index: o.status for o in await _collect(
            client.bulk("create_contact", contacts(n), fields=["id"], journal=journal))}
    assert {i for i, status in again.items() if status == "skipped"} == done
    assert {i for i, status in again.items() if status == "succeeded"} == set(range(n)) - done
    assert len(server.requests) == n - len(done)
    assert_exactly_one_contact_per_phone(server, n)


@pytest.mark.parametrize("ordered", [False, True])
@pytest.mark.parametrize("kind", ["list", "generator", "async generator"])
async def test_every_kind_of_input_reports_the_rest_not_sent(
    kind: str, ordered: bool, server: FakeSippet
) -> None:
    """Lists, generators and async generators, in either order: one outcome per item."""
    n, concurrency = 300, 8
    items: Any = {"list": list(contacts(n)), "generator": contacts(n),
                  "async generator": _agen(n)}[kind]
    async with _wrong_key_client(server) as client:
        job = client.bulk("create_contact", items, concurrency=concurrency, ordered=ordered)
        outcomes = await _collect(job)
    assert 0 < len(server.requests) <= concurrency
    assert_one_outcome_per_index(outcomes, n)
    if ordered:
        assert [o.index for o in outcomes] == list(range(n))
    assert sum(o.status == "not_sent" for o in outcomes) == n - len(server.requests)


async def test_report_unsent_false_leaves_the_rest_of_the_input_unread(
    server: FakeSippet,
) -> None:
    """For an endless source: only what was pulled is reported, and the cause is on the job."""
    items = Counting(1000)
    async with _wrong_key_client(server) as client:
        job = client.bulk("create_contact", items, concurrency=8, report_unsent=False)
        outcomes = await _collect(job)
    assert isinstance(job.stopped_by, AuthenticationError)
    assert len(outcomes) == items.pulled == len(server.requests) <= 8
    assert_one_outcome_per_index(outcomes, items.pulled)


async def test_the_stop_is_logged_once_and_never_shows_the_key(
    server: FakeSippet, caplog: pytest.LogCaptureFixture
) -> None:
    """One log record names the cause; the key is in no log, outcome, summary or error."""
    caplog.set_level(logging.DEBUG, logger="sippet_async")
    async with _wrong_key_client(server) as client:
        job = client.bulk("create_contact", contacts(500), concurrency=16)
        outcomes = await _collect(job)
    stops = [r for r in caplog.records if "stopped by" in r.getMessage()]
    assert len(stops) == 1
    assert stops[0].levelno == logging.ERROR
    assert "AuthenticationError" in stops[0].getMessage()
    seen = caplog.text + job.report.summary() + "".join(map(repr, outcomes))
    seen += "".join(str(o.error) for o in outcomes) + repr(job.stopped_by)
    assert WRONG_KEY not in seen


async def test_an_unknown_action_stops_the_job(client: SippetClient, server: FakeSippet) -> None:
    """action_not_found fails every item the same way: the job stops at once."""
    job = client.bulk("create_contactz", contacts(200), concurrency=4)
    outcomes = await _collect(job)
    assert isinstance(job.stopped_by, ActionNotFoundError)
    assert 0 < len(server.requests) <= 4
    assert job.report.not_sent == 200 - len(server.requests)
    assert len(outcomes) == 200


async def test_a_redirect_stops_the_job(client: SippetClient, server: FakeSippet) -> None:
    """A redirect is never followed, so no request can succeed: one request, then stop."""
    server.push_reply(Reply(status=307, headers={"Location": "http://elsewhere.invalid/"}))
    job = client.bulk("create_contact", contacts(50), concurrency=1)
    outcomes = await _collect(job)
    assert isinstance(job.stopped_by, ProtocolError)
    assert job.stopped_by.status == 307
    assert len(server.requests) == 1
    assert [o.status for o in outcomes] == ["failed"] + ["not_sent"] * 49


async def test_item_errors_do_not_stop_the_job(client: SippetClient, server: FakeSippet) -> None:
    """A rejected item is that item's problem: the job carries on."""
    items = [{"fullName": "No Phone"}, *contacts(20)]
    outcomes = await _collect(client.bulk("create_contact", items, concurrency=4))
    assert sorted(o.status for o in outcomes) == ["failed"] + ["succeeded"] * 20


async def test_abort_by_the_caller_reports_the_rest_with_its_cause(
    client: SippetClient, server: FakeSippet, tmp_path: Path
) -> None:
    """abort(cause): in flight finishes, the rest is not sent with that cause; resumable."""
    n = 100
    journal = tmp_path / "j"
    cause = SippetError("enough for today")
    job = client.bulk("create_contact", contacts(n), concurrency=4, journal=journal)
    outcomes = []
    async with job:
        async for outcome in job:
            outcomes.append(outcome)
            if len(outcomes) == 10:
                job.abort(cause)
                job.abort(SippetError("a second cause does not replace the first"))
    assert job.stopped_by is cause
    assert_one_outcome_per_index(outcomes, n)
    sent = {r.json["input"]["phoneE164"] for r in server.requests}
    # Unordered, workers run ahead of the caller by up to `concurrency` settled outcomes,
    # plus `concurrency` in flight.
    assert len(sent) == len(server.contacts) <= 10 + 2 * 4
    assert all(o.error is cause for o in outcomes if o.status == "not_sent")
    assert {o.item["phoneE164"] for o in outcomes if o.status == "succeeded"} == sent
    with pytest.raises(UsageError):
        job.abort(RuntimeError("not a SippetError"))  # type: ignore[arg-type]

    again = await _collect(client.bulk("create_contact", contacts(n), journal=journal))
    assert sum(o.status == "skipped" for o in again) == len(sent)
    assert_exactly_one_contact_per_phone(server, n)


async def test_a_lookup_that_gets_the_fatal_reply_stops_the_job(
    server: FakeSippet, tmp_path: Path
) -> None:
    """Items in doubt from a crash stay in doubt when their lookup gets a 401; the job stops."""
    n = 100
    journal = tmp_path / "j"
    crashed = Journal.open(journal, action="create_contact")
    for i in range(20):
        crashed.started(i, default_key(contact(i)))
    crashed.close()
    async with _wrong_key_client(server) as client:
        job = client.bulk("create_contact", contacts(n), concurrency=4, journal=journal,
                          reconcile=ByPhone(client))
        outcomes = await _collect(job)
    assert isinstance(job.stopped_by, AuthenticationError)
    assert len(server.requests) <= 4
    assert {r.action for r in server.requests} == {"list_contacts"}  # no create was sent
    statuses = collections.Counter(o.status for o in outcomes)
    assert statuses == {"unknown": len(server.requests), "not_sent": n - len(server.requests)}

    async with client_for(server) as client:
        again = await _collect(client.bulk("create_contact", contacts(n), journal=journal,
                                           reconcile=ByPhone(client)))
    assert {o.status for o in again} == {"succeeded"}
    assert_exactly_one_contact_per_phone(server, n)


async def test_an_item_set_aside_for_the_redrive_is_settled_by_the_stop(
    server: FakeSippet,
) -> None:
    """Ordered, with an item waiting for the redrive pass when the key is rejected: the
    stop reports it as it stands (no redrive after a stop) and every outcome still comes,
    in order."""
    for status in (429, 429, 401, 401):  # items 0 and 1 set aside; then the key fails
        server.push_reply(Reply(status=status, headers={"Retry-After": "0"}))
    async with client_for(server, retry=RetryPolicy(attempts=1, sleep=no_wait)) as client:
        job = client.bulk("create_contact", contacts(50), concurrency=2, ordered=True)
        async with asyncio.timeout(60):  # a hang fails here instead of stalling the suite
            outcomes = await _collect(job)
    assert [o.index for o in outcomes] == list(range(50))
    assert isinstance(job.stopped_by, AuthenticationError)
    assert outcomes[1].status == "failed"  # never re-driven: reported with its own error
    assert isinstance(outcomes[1].error, RateLimitError)
    assert len(server.requests) == 4
    assert job.report.not_sent == 50 - 3


async def test_abort_after_the_end_changes_nothing(client: SippetClient) -> None:
    """A finished job keeps its report: a late abort() does not mark it stopped."""
    job = client.bulk("create_contact", contacts(3))
    assert {o.status for o in await _collect(job)} == {"succeeded"}
    job.abort(SippetError("too late"))
    assert job.stopped_by is None
    assert "stopped by" not in job.report.summary()
